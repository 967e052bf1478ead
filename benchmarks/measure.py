"""Measuring helpers shared by the benchmark scripts (peak step memory, child runs, output).

Each benchmark measures memory in a fresh subprocess of itself and prints one
JSON line there; :func:`run_json_child` runs it and reads that line, and
:func:`memory_events` and :func:`peak_allocated_mb` are the measurement the child makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


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
