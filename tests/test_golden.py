"""Golden end-to-end results: every config x every zoo model x {statistical, synthetic trace}.

Each file under ``tests/golden/<config>/`` pins the summary of H2Learn, the
dense accelerator of equal area and the V100 model for one case, as ZigZag
and SCALE-Sim pin theirs.  A refactor must leave every file unchanged; a
change of a figure shows as a diff of these files, rewritten only by
``pytest tests/test_golden.py --update-golden``.

Numbers are written with 12 significant digits: enough that any change of a
count formula, a price or a schedule shows, while a re-ordered floating-point
sum (last-bit noise) does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from h2learn.arch.config import load_config
from h2learn.arch.simulate import simulate
from h2learn.baselines.dense import simulate_dense
from h2learn.baselines.gpu import v100_training_step
from h2learn.spec import build_spec, model_names
from h2learn.workload.record import record_from_dataset

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
MODES = ("statistical", "trace")
# The synthetic trace is small so that every zoo model (ImageNet shapes too) records in a second.
TRACE_BATCH, TRACE_STEPS, TRACE_SEED = 2, 2, 0

SIGNIFICANT_DIGITS = 12


def _rounded(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    raise TypeError(f"cannot pin a {type(value).__name__} in a golden file")


def _events_by_phase(activity) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = {}
    for (_layer, phase), counts in activity.by_layer_phase().items():
        row = totals.setdefault(phase, {})
        for name, value in counts.items():
            row[name] = row.get(name, 0.0) + value
    return totals


def golden_case(config_path: Path, model: str, mode: str) -> dict[str, Any]:
    """The pinned figures of one case, as a JSON-ready dictionary."""
    config = load_config(config_path)
    if mode == "statistical":
        spec = build_spec(model)
        workload = spec
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one reduction order for the recorded currents
        try:
            workload = record_from_dataset(
                model,
                "synthetic",
                batch_size=TRACE_BATCH,
                time_steps=TRACE_STEPS,
                seed=TRACE_SEED,
            )
        finally:
            torch.set_num_threads(threads)
        spec = workload.spec
    h2 = simulate(workload, config)
    dense = simulate_dense(workload, config)
    gpu = v100_training_step(spec)
    return _rounded(
        {
            "case": {"config": config_path.name, "model": model, "mode": mode},
            "h2learn": {
                **h2.summary(),
                "leakage_j": h2.leakage_j,
                "energy_by_component_j": h2.energy_by_component_j,
                "energy_by_engine_j": h2.energy_by_engine_j,
                "energy_by_layer_j": h2.energy_by_layer_j,
                "energy_by_phase_j": h2.energy_by_phase_j,
                "area_by_component_mm2": h2.area_by_component_mm2,
                "utilization": h2.utilization,
                "events_by_phase": _events_by_phase(h2.activity),
            },
            "dense_accelerator": {
                "mac_units": dense.mac_units,
                "seconds": dense.seconds,
                "cycles": dense.cycles,
                "energy_j": dense.energy_j,
                "area_mm2": dense.area_mm2,
                "dram_bytes": dense.sim.dram_bytes,
                "energy_by_phase_j": dense.sim.energy_by_phase_j,
            },
            "v100_model": {**gpu.totals(), "by_phase": gpu.by_phase()},
        }
    )


def golden_text(case: dict[str, Any]) -> str:
    return json.dumps(case, indent=1, sort_keys=True) + "\n"


def golden_path(config_path: Path, model: str, mode: str) -> Path:
    return GOLDEN / config_path.stem / f"{model}-{mode}.json"


CASES = [(c, m, mode) for c in CONFIGS for m in model_names() for mode in MODES]


@pytest.mark.parametrize(
    ("config_path", "model", "mode"),
    CASES,
    ids=[f"{c.stem}-{m}-{mode}" for c, m, mode in CASES],
)
def test_golden_results_unchanged(config_path, model, mode, update_golden):
    path = golden_path(config_path, model, mode)
    text = golden_text(golden_case(config_path, model, mode))
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        return
    assert path.exists(), f"{path} is missing: run pytest tests/test_golden.py --update-golden"
    assert path.read_text() == text, (
        f"{path.relative_to(ROOT)} changed; if the change is intended, rewrite it with "
        "pytest tests/test_golden.py --update-golden and give the reason in the commit"
    )


def test_every_golden_file_belongs_to_a_case():
    expected = {golden_path(c, m, mode) for c, m, mode in CASES}
    stale = sorted(p for p in GOLDEN.rglob("*.json") if p not in expected)
    assert not stale, f"golden files with no case (delete them): {stale}"


def test_rounding_keeps_a_formula_change_visible():
    # A change in the 9th digit survives the rounding; last-bit noise does not.
    assert _rounded(1.0 + 1e-9) != _rounded(1.0)
    assert _rounded(0.1 + 0.2) == _rounded(0.3)
