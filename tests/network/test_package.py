"""h2learn.network: the split modules, their import boundary and the h2learn.spec path."""

import ast
import sys
from pathlib import Path

import h2learn.network
import h2learn.spec
from h2learn.network import layers, sketch, zoo

PACKAGE = Path(h2learn.network.__file__).parent
# What each module may import of h2learn: the error types and the modules below it.
ALLOWED = {
    "layers": {"h2learn.errors"},
    "sketch": {"h2learn.errors", "h2learn.network.layers"},
    "zoo": {"h2learn.errors", "h2learn.network.layers", "h2learn.network.sketch"},
    "__init__": {
        "h2learn.network.layers",
        "h2learn.network.sketch",
        "h2learn.network.zoo",
    },
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_modules_import_only_errors_the_standard_library_and_each_other():
    assert {path.stem for path in PACKAGE.glob("*.py")} == set(ALLOWED)
    for stem, allowed in ALLOWED.items():
        imported = imported_modules(PACKAGE / f"{stem}.py")
        ours = {name for name in imported if name.split(".")[0] == "h2learn"}
        assert ours <= allowed, f"{stem}.py imports {sorted(ours - allowed)}"
        others = {name.split(".")[0] for name in imported - ours} - {"__future__"}
        assert others <= sys.stdlib_module_names, f"{stem}.py imports {sorted(others)}"


def test_spec_re_exports_the_same_objects():
    assert set(h2learn.spec.__all__) == set(h2learn.network.__all__)
    for name in h2learn.spec.__all__:
        assert getattr(h2learn.spec, name) is getattr(h2learn.network, name), name
    assert h2learn.spec.LayerSpec is layers.LayerSpec
    assert h2learn.spec.expand is sketch.expand
    assert h2learn.spec.ZOO is zoo.ZOO  # a model registered through either path is seen by both


def test_a_workload_built_through_either_path_is_the_same_type():
    workload = h2learn.spec.build_spec("digits-mlp")
    assert isinstance(workload, layers.Workload)
    assert isinstance(workload.network, h2learn.network.NetworkSpec)
    assert workload == zoo.build_spec("digits-mlp")
    assert layers.Workload.from_json(workload.to_json()) == workload
