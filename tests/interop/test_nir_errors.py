"""NIR import and export: every bad input is one line naming the node (API and command line).

The reference for each case is the NIR graph written here with the ``nir``
package; the command-line cases run ``h2learn import``/``export`` and check
for one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import dataclasses
import re
import sys

import nir
import numpy as np
import pytest

from h2learn.errors import H2LearnError
from h2learn.interop import NIRError, export_network, import_graph, read_nir
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import FC, Conv, build_spec, expand

# --------------------------------------------------------------------------
# Errors: one line naming the node
# --------------------------------------------------------------------------


def _lif(shape=(3,), **fields):
    values = {"tau": 1e-3, "r": 10.0, "v_leak": 0.0, "v_threshold": 0.5, "v_reset": 0.0}
    values.update(fields)
    return nir.LIF(**{k: np.full(shape, v, dtype=float) for k, v in values.items()})


def _graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _chain(*middle) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type={"input": np.array([4])})}
    nodes.update(middle)
    nodes["output"] = nir.Output(output_type={"output": np.array([3])})
    keys = list(nodes)
    return _graph(nodes, list(zip(keys[:-1], keys[1:], strict=True)))


AFFINE = ("fc", nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)))


@pytest.mark.parametrize(
    "graph, words",
    [
        (
            _chain(
                AFFINE,
                (
                    "syn",
                    nir.CubaLIF(
                        **{
                            k: np.ones(3)
                            for k in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold")
                        }
                    ),
                ),
            ),
            ["'syn'", "CubaLIF"],
        ),
        (
            _chain(AFFINE, ("li", nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)))),
            ["'li'", "LI"],
        ),
        (_chain(AFFINE, ("n", _lif(v_reset=0.2))), ["'n'", "v_reset"]),
        (_chain(AFFINE, ("n", _lif(v_leak=0.1))), ["'n'", "v_leak"]),
        (_chain(AFFINE, ("n", _lif(tau=1e-5))), ["'n'", "dt"]),
        (
            _chain(
                AFFINE,
                (
                    "n",
                    nir.LIF(
                        tau=np.array([1e-3, 2e-3, 1e-3]),
                        r=np.ones(3),
                        v_leak=np.zeros(3),
                        v_threshold=np.ones(3),
                    ),
                ),
            ),
            ["'n'", "tau differs"],
        ),
        (_chain(("n", _lif((4,))), AFFINE), ["'n'", "follows"]),
        (_chain(("t", nir.Threshold(threshold=np.ones(4))), AFFINE), ["'t'", "Threshold"]),
        (_chain(AFFINE, ("n", _lif()), ("m", _lif())), ["'m'", "follows"]),
    ],
)
def test_unsupported_nodes_give_one_line_naming_them(graph, words):
    with pytest.raises(NIRError) as error:
        import_graph(graph)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_cycles_and_branches_are_refused():
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "a": nir.Affine(weight=np.eye(3), bias=np.zeros(3)),
        "b": _lif(),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    cycle = _graph(nodes, [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    with pytest.raises(NIRError, match="cycle through node 'a'"):
        import_graph(cycle)
    branch = _graph(nodes, [("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(NIRError, match="node 'input' feeds 2 nodes"):
        import_graph(branch)
    dangling = _graph(nodes, [("input", "a"), ("a", "ghost")])
    with pytest.raises(NIRError, match="'ghost'"):
        import_graph(dangling)


def test_different_decays_are_refused_and_thresholds_rescaled():
    second = ("fc2", nir.Affine(weight=np.ones((3, 3)), bias=np.ones(3)))
    with pytest.raises(NIRError, match="node 'n2': alpha"):
        import_graph(_chain(AFFINE, ("n1", _lif()), second, ("n2", _lif(tau=2e-3))))
    imported = import_graph(
        _chain(AFFINE, ("n1", _lif(r=10.0)), second, ("n2", _lif(v_threshold=0.25)))
    )
    assert imported.spec.lif.v_th == 0.5
    fc2 = imported.state_dict["layers.1.op.bias"]
    assert fc2.tolist() == pytest.approx([2.0, 2.0, 2.0])  # scaled by 0.5 / 0.25


def test_malformed_graphs_give_one_line():
    conv = nir.Conv2d(None, np.ones((2, 1, 3, 3)), 1, 1, 1, 1, np.zeros(2))
    image = ("input", nir.Input(input_type={"input": np.array([1, 4, 4])}))
    grouped = dataclasses.replace(conv, groups=None)
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), **dict([AFFINE])}
    nodes["output"] = nir.Output(output_type={"output": np.array([3])})
    hinted = nir.NIRGraph(
        nodes, [("input", "fc"), ("fc", "output")], {"h2learn_time_steps": "six"}, False
    )
    cases = [
        (_chain(("c", grouped)), "'c' (Conv2d)"),
        (_graph(dict([image, ("c", conv), ("output", nir.Output(None))]), [("input", "c")]), "'c'"),
        (_chain(AFFINE, ("f", nir.Flatten(input_type=None, start_dim="x"))), "'f' (Flatten)"),
        (
            _graph(
                {"input": nir.Input(input_type={"input": None}), "output": nir.Output(None)},
                [("input", "output")],
            ),
            "'input' (Input)",
        ),
        (_graph(dict([AFFINE]), 5), "edges"),
        (hinted, "h2learn_time_steps"),
    ]
    for graph, words in cases:
        with pytest.raises(NIRError, match=re.escape(words)) as error:
            import_graph(graph)
        assert "\n" not in str(error.value)


def test_bad_files_give_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.nir"
    corrupt.write_bytes(b"\x89HDF\r\n not really" * 10)
    truncated = tmp_path / "truncated.nir"
    nir.write(truncated, _chain(AFFINE))
    truncated.write_bytes(truncated.read_bytes()[:900])
    for path, words in (
        (corrupt, "not a readable NIR file"),
        (truncated, "not a readable NIR file"),
        (tmp_path / "none.nir", "no NIR"),
    ):
        with pytest.raises(H2LearnError, match=words) as error:
            read_nir(path)
        assert "\n" not in str(error.value)


def test_export_refuses_what_nir_cannot_hold():
    pooled = build_spec("fmnist-conv", time_steps=1)
    residual = expand(
        "res", (2, 6, 6), 2, [Conv(4), Conv(4, residual=0), FC(2, fires=False)], time_steps=2
    )
    for spec, words in ((pooled, "'maxpool1' .*no maxpool node"), (residual, "'conv2'.*chains")):
        with pytest.raises(NIRError, match=words):
            export_network(SpikingNetwork(spec))


def test_commands_give_one_line_errors(tmp_path, monkeypatch, capsys):
    from h2learn.cli import main

    (tmp_path / "bad.nir").write_text("not hdf5")
    nir.write(tmp_path / "delay.nir", _chain(AFFINE, ("syn", nir.Delay(delay=np.ones(3)))))
    cuba = {k: np.ones(3) for k in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold")}
    nir.write(tmp_path / "cuba.nir", _chain(AFFINE, ("syn", nir.CubaLIF(**cuba))))
    whole = (tmp_path / "cuba.nir").read_bytes()
    (tmp_path / "truncated.nir").write_bytes(whole[: len(whole) // 2])
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "a": nir.Affine(weight=np.eye(3), bias=np.zeros(3)),
        "b": _lif(),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    cycle = [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")]
    nir.write(tmp_path / "cycle.nir", _graph(nodes, cycle))
    monkeypatch.chdir(tmp_path)
    for args, words in (
        (("import", "bad.nir", "--out", "x.json"), "not a readable NIR file"),
        (("import", "truncated.nir", "--out", "x.json"), "not a readable NIR file"),
        (("import", "cycle.nir", "--out", "x.json"), "cycle through node 'a'"),
        (("import", "cuba.nir", "--out", "x.json"), "node 'syn' (CubaLIF)"),
        (("import", "delay.nir", "--out", "x.json"), "node 'syn' (Delay)"),
        (("import", "delay.nir", "--out", "none/x.json", "--dt", "0"), "dt=0.0"),
        (("import", "delay.nir", "--out", "x.json", "-T", "0"), "--time-steps 0"),
        (("export", "missing.pt", "--out", "x.nir"), "no checkpoint"),
        (("export", "bad.nir", "--out", "x.nir"), "not a readable h2learn checkpoint"),
    ):
        monkeypatch.setattr(sys, "argv", ["h2learn", *args])
        with pytest.raises(SystemExit) as stop:
            main()
        lines = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(lines) == 1, lines
        assert lines[0].startswith("error:") and words in lines[0], lines


def test_no_interop_module_imports_a_private_name():
    import ast
    from pathlib import Path

    import h2learn.cli.interop as cli_interop
    import h2learn.interop as interop_package

    files = [*Path(interop_package.__file__).parent.glob("*.py"), Path(cli_interop.__file__)]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("h2learn"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {node.module}"
