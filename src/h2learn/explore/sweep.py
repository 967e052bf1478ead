"""Design-space sweeps: the Cartesian product of config-field values, simulated and ranked.

``run_sweep`` simulates one training iteration of a zoo model (statistical
mode, :data:`~h2learn.workload.densities.STATED_DENSITIES`) for every point of
the product of ``vary``'s values, on a local process pool or a Dask cluster,
and writes the rows, the Pareto set over (seconds, energy_j, area_mm2) and
Pareto plots.  Every finished point is appended to ``points.jsonl`` at once,
so an interrupted sweep resumes where it stopped.  See docs/sweep.md.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from h2learn.arch.config import FIELD_ALIASES, HardwareConfig, set_fields
from h2learn.errors import H2LearnError

METRICS: tuple[str, ...] = ("seconds", "energy_j", "area_mm2", "power_w")
"""The columns every row carries besides the point's values."""

PARETO_METRICS: tuple[str, ...] = ("seconds", "energy_j", "area_mm2")
"""The objectives of the Pareto set (all minimised)."""

ALIASES = FIELD_ALIASES
"""Short names that set several fields at once (:data:`h2learn.arch.config.FIELD_ALIASES`)."""

MANIFEST_VERSION = 1

Progress = Callable[[int, int, dict[str, Any]], None]
"""``progress(done, total, row)``: called once per point computed in this run."""


# --------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_vary(items: list[str]) -> dict[str, list]:
    """Parse ``["field=v1,v2,...", ...]`` into ``{field: [v1, v2, ...]}``.

    Values become bool (``true``/``false``), int, float or str, in that order
    of preference.  Malformed items raise a one-line :class:`H2LearnError`.
    """
    vary: dict[str, list] = {}
    for item in items:
        field, sep, values = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise H2LearnError(f"--vary {item!r}: expected FIELD=V1,V2,... (e.g. k=2,4,8)")
        if field in vary:
            raise H2LearnError(f"--vary {field}: given twice; list all its values in one --vary")
        parts = [part.strip() for part in values.split(",")]
        if any(not part for part in parts):
            raise H2LearnError(f"--vary {item!r}: empty value; expected FIELD=V1,V2,...")
        vary[field] = [_parse_value(part) for part in parts]
    return vary


def point_id(point: Mapping[str, Any]) -> str:
    """The stable key of a point: its values as sorted, compact JSON."""
    return json.dumps(dict(point), sort_keys=True, separators=(",", ":"))


def _check_vary(vary: Mapping[str, Sequence[Any]]) -> None:
    for field, values in vary.items():
        if not isinstance(field, str) or not field:
            raise H2LearnError(f"vary field {field!r} must be a non-empty string")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise H2LearnError(f"--vary {field}: needs a non-empty list of values")
        seen: set[str] = set()
        for value in values:
            if not isinstance(value, (bool, int, float, str)):
                raise H2LearnError(
                    f"--vary {field}: value {value!r} must be a number, bool or string"
                )
            key = json.dumps(value)
            if key in seen:
                raise H2LearnError(f"--vary {field}: value {value!r} given twice")
            seen.add(key)
        if field in METRICS or field in ("id", "pareto"):
            raise H2LearnError(f"--vary {field}: clashes with a result column; not a config field")
    for alias, targets in ALIASES.items():
        clash = [target for target in targets if alias in vary and target in vary]
        if clash:
            raise H2LearnError(f"--vary {alias} already sets {clash[0]}; vary only one of them")


def point_config(base: HardwareConfig, point: Mapping[str, Any]) -> HardwareConfig:
    """``base`` with the point's fields set (aliases expanded), validated as one config.

    A thin wrapper of :func:`h2learn.arch.config.set_fields` whose one-line error
    names the sweep point.
    """
    try:
        return set_fields(base, point)
    except H2LearnError as exc:
        values = ", ".join(f"{field}={value}" for field, value in point.items())
        raise H2LearnError(f"sweep point {values}: {exc}") from None


def _points(vary: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    fields = list(vary)
    return [dict(zip(fields, combo, strict=True)) for combo in itertools.product(*vary.values())]


# --------------------------------------------------------------------------
# Evaluation (runs in worker processes: module-level and picklable)
# --------------------------------------------------------------------------


def evaluate_point(
    config_data: dict[str, Any], model: str, batch_size: int, point: dict[str, Any]
) -> dict[str, Any]:
    """One sweep row: the point's values and the simulated metrics (statistical mode)."""
    from h2learn.arch.simulate import simulate
    from h2learn.spec import build_spec
    from h2learn.workload.densities import STATED_DENSITIES

    config = HardwareConfig.model_validate(config_data)
    result = simulate(build_spec(model, batch_size=batch_size), config, STATED_DENSITIES)
    row = {"id": point_id(point), **point}
    for metric in METRICS:
        row[metric] = float(getattr(result, metric))
    return row


def _run_pool(tasks, workers: int, record: Callable[[dict[str, Any]], None]) -> None:
    import multiprocessing

    # not fork: unsafe beside threads (a Dask client, BLAS) in the calling process.
    # The fork server imports the simulator (and torch) once for all workers.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        pending = {executor.submit(evaluate_point, *task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: f.result()["id"]):
                record(future.result())
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _run_dask(tasks, scheduler: str, record: Callable[[dict[str, Any]], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise H2LearnError(
            "--scheduler needs Dask: pip install 'dask[distributed]' (here and on the workers)"
        ) from None
    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise H2LearnError(
            f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}); "
            "start one with `dask scheduler` and workers with `dask worker ADDRESS`"
        ) from None
    futures = []
    try:
        if tasks:
            futures = client.map(evaluate_point, *zip(*tasks, strict=True), pure=False)
        for future in as_completed(futures):
            record(future.result())
    finally:
        if futures:
            client.cancel(futures)
        client.close()


# --------------------------------------------------------------------------
# Analysis and outputs
# --------------------------------------------------------------------------


def pareto_flags(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = PARETO_METRICS
) -> list[bool]:
    """For each row, whether no other row is at least as good in every metric and better in one.

    All metrics are minimised; identical rows do not dominate each other.
    """
    import numpy as np

    if not rows:
        return []
    values = np.array([[float(row[m]) for m in metrics] for row in rows])
    flags = []
    for vector in values:
        no_worse = np.all(values <= vector, axis=1)
        better = np.any(values < vector, axis=1)
        flags.append(not bool(np.any(no_worse & better)))
    return flags


def _best(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The row minimising each metric; ties go to the better other metrics, then the id."""

    def key(row: Mapping[str, Any], metric: str) -> tuple:
        return (row[metric], *(row[m] for m in PARETO_METRICS if m != metric), row["id"])

    return {m: dict(min(rows, key=lambda r, m=m: key(r, m))) for m in METRICS} if rows else {}


def _plot(rows, x: str, y: str, path: Path, labels: Mapping[str, str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs, ys = [r[x] for r in rows], [r[y] for r in rows]
    ax.scatter(xs, ys, s=14, c="#bbbbbb", label="design points")
    front = [r for r in rows if r["pareto"]]
    ax.scatter(
        [r[x] for r in front],
        [r[y] for r in front],
        s=22,
        c="#d62728",
        label="Pareto (time, energy, area)",
    )
    # the 2-D front of this projection, as a staircase
    stair = sorted(zip(xs, ys, strict=True))
    line, low = [], float("inf")
    for px, py in stair:
        if py < low:
            line.append((px, py))
            low = py
    if line:
        ax.step(*zip(*line, strict=True), where="post", c="#d62728", lw=0.8)
    for axis, data in (("x", xs), ("y", ys)):
        if data and min(data) > 0 and max(data) / min(data) > 50:
            getattr(ax, f"set_{axis}scale")("log")
    ax.set_xlabel(labels[x])
    ax.set_ylabel(labels[y])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _write_outputs(out: Path, rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    from h2learn.snn.train import atomic_write_json

    columns = [c for c in rows[0] if c != "id"] if rows else []
    atomic_write_json(
        out / "results.json",
        {
            **info,
            "points": len(rows),
            "pareto_metrics": list(PARETO_METRICS),
            "pareto": [r["id"] for r in rows if r["pareto"]],
            "best": _best(rows),
            "rows": rows,
        },
    )
    tmp = out / "results.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "results.csv")
    labels = {
        "seconds": "time per iteration (s)",
        "energy_j": "energy per iteration (J)",
        "area_mm2": "area (mm²)",
    }
    if rows:
        _plot(rows, "seconds", "energy_j", out / "pareto_time_energy.png", labels)
        _plot(rows, "seconds", "area_mm2", out / "pareto_time_area.png", labels)


# --------------------------------------------------------------------------
# Resume state
# --------------------------------------------------------------------------


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    from h2learn.snn.train import atomic_write_json

    path = out / "sweep.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old != manifest:
            raise H2LearnError(
                f"{out} holds a sweep of another model, batch size or base config; "
                "use a new --out directory or delete this one"
            )
    else:
        atomic_write_json(path, manifest)


def _load_finished(path: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Finished rows by id; a torn or corrupt line (an interrupted write) is dropped."""
    if not path.is_file():
        return {}
    text = path.read_text()
    good, clean = [], text.endswith("\n") or not text
    for line in text.splitlines():
        try:
            row = json.loads(line)
            ok = (
                isinstance(row, dict)
                and isinstance(row.get("id"), str)
                and all(isinstance(row.get(m), float) for m in METRICS)
            )
        except json.JSONDecodeError:
            ok = False
        if ok:
            good.append((line, row))
        else:
            clean = False
    if not clean:  # rewrite so that appending starts on a fresh line
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line, _ in good))
        os.replace(tmp, path)
    return {row["id"]: row for _, row in good if row["id"] in wanted}


# --------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------


def run_sweep(
    base: HardwareConfig,
    vary: dict[str, list],
    model: str,
    out_dir,
    scheduler: str | None = None,
    batch_size: int = 16,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Simulate every point of the product of ``vary``'s values; write and return the rows.

    Args:
        base: the design every point starts from.
        vary: dotted config field (or alias ``k``) -> values; e.g. from :func:`parse_vary`.
        model: zoo model name (:func:`h2learn.spec.model_names`).
        out_dir: where ``points.jsonl``, ``results.json``, ``results.csv`` and the
            Pareto plots go; finished points found in ``points.jsonl`` are reused.
        scheduler: Dask scheduler address (``tcp://host:8786``); None: local processes.
        batch_size: the mini-batch of the simulated iteration.
        workers: local processes (default: CPU count); 1 runs in this process.
        progress: ``progress(done, total, row)`` after each point computed in this run.

    Returns:
        One row per point, sorted by point id: ``id``, the point's values,
        ``seconds``, ``energy_j``, ``area_mm2``, ``power_w``, ``pareto``.
    """
    from h2learn.spec import build_spec
    from h2learn.workload.densities import STATED_DENSITIES

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise H2LearnError(f"batch_size={batch_size!r} must be a positive integer")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise H2LearnError(f"--workers {workers!r} must be a positive integer")
    build_spec(model, batch_size=batch_size)  # unknown model: one-line SpecError
    _check_vary(vary)
    points = _points(vary)
    configs = {point_id(p): point_config(base, p).model_dump() for p in points}  # all first

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = {"model": model, "batch_size": batch_size, "densities": STATED_DENSITIES}
    info = {**run, "mode": "statistical", "vary": {f: list(v) for f, v in vary.items()}}
    manifest = {"version": MANIFEST_VERSION, **run, "base": base.model_dump()}
    _check_manifest(out, json.loads(json.dumps(manifest)))

    journal = out / "points.jsonl"
    finished = _load_finished(journal, set(configs))
    tasks = [
        (configs[point_id(p)], model, batch_size, p) for p in points if point_id(p) not in finished
    ]
    total = len(points)

    with journal.open("a") as handle:

        def record(row: dict[str, Any]) -> None:
            line = json.dumps(row)
            handle.write(line + "\n")
            handle.flush()
            finished[row["id"]] = json.loads(line)
            if progress is not None:
                progress(len(finished), total, finished[row["id"]])

        if scheduler is not None:
            _run_dask(tasks, scheduler, record)
        elif tasks and (workers == 1 or len(tasks) == 1):
            for task in tasks:
                record(evaluate_point(*task))
        elif tasks:
            _run_pool(tasks, min(workers or os.cpu_count() or 1, len(tasks)), record)

    rows = [dict(finished[pid]) for pid in sorted(configs)]
    for row, flag in zip(rows, pareto_flags(rows), strict=True):
        row["pareto"] = flag
    _write_outputs(out, rows, info)
    return rows
