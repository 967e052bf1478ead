"""Measuring helpers shared by the benchmark scripts (timing, peak step memory, child runs,
output).

Timing: :func:`interleaved_times` runs every implementation once per round,
round-robin and starting one later each round, so that all of them share the
machine's load; :func:`paired_ratio` compares two of them round by round and
:func:`timing_row` summarises one.  Memory: each benchmark measures it in a
fresh subprocess of itself and prints one JSON line there; :func:`run_json_child`
runs it and reads that line, and :func:`memory_events` and
:func:`peak_allocated_mb` are the measurement the child makes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Times:
    """Seconds per round of each implementation: wall clock and this process's CPU time."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)


def interleaved_times(
    runs: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup: int,
    after_round: Callable[[bool], None] | None = None,
) -> Times:
    """Time each of ``runs`` once per round, round-robin, starting one later each round.

    The first ``warmup`` rounds are run and discarded.  ``after_round(kept)``
    runs after every round (``kept``: whether the round counts), e.g. to time
    a reference kernel under the same load.
    """
    names = list(runs)
    times = Times({n: [] for n in names}, {n: [] for n in names})
    for round_ in range(warmup + rounds):
        kept = round_ >= warmup
        for i in range(len(names)):
            name = names[(round_ + i) % len(names)]
            start, cpu_start = time.perf_counter(), time.process_time()
            runs[name]()
            if kept:
                times.wall[name].append(time.perf_counter() - start)
                times.cpu[name].append(time.process_time() - cpu_start)
        if after_round is not None:
            after_round(kept)
    return times


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of ``a[r] / b[r]``: the rounds share the machine's load."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def timing_row(times: Sequence[float], ours: Sequence[float]) -> dict[str, Any]:
    """Median and minimum (ms), the paired ratio to ours and every sample of one implementation."""
    return {
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "ratio_to_h2learn": paired_ratio(times, ours),
        "samples_ms": [v * 1e3 for v in times],
    }


def memory_events(run_step: Callable[[], object]) -> list[dict[str, Any]]:
    """The allocator's ``[memory]`` events of one ``run_step()`` (``torch.profiler`` with
    ``profile_memory=True``): each has ``Bytes`` (+ allocated, - freed) and
    ``Total Allocated`` (the running total)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
    return [e["args"] for e in events if e.get("name") == "[memory]"]


def peak_allocated_mb(memory: Sequence[dict[str, Any]]) -> float:
    """Peak of the running total of bytes allocated over ``memory`` events, in MiB."""
    return max((m["Total Allocated"] for m in memory), default=0) / 2**20


def run_json_child(args: Sequence[str], what: str) -> dict[str, Any] | None:
    """Run ``python args...`` and return the last JSON line it printed (None, with its
    stderr reported, when it fails)."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  memory run {what} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def write_outputs(
    json_path: Path | None, payload: Any, text_path: Path | None, texts: Sequence[str]
) -> None:
    """Write the raw numbers as JSON and the report as text, where paths are given."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=1))
    if text_path:
        text_path.parent.mkdir(parents=True, exist_ok=True)
        text_path.write_text("\n".join(texts) + "\n")
