"""glibc malloc tuning: freed tensors' pages are reused instead of faulted in again."""

import json
import subprocess
import sys

import pytest

from h2learn.snn import allocator

# A step-like pattern (three tensors of 32, 16 and 48 MiB, filled and freed in
# an interleaved order), eight times; reports the minor page faults of the last
# three rounds, after the first rounds have had the chance to map the memory.
SCRIPT = """
import json, resource, sys
import torch
from h2learn.snn.allocator import reuse_freed_memory
tuned = reuse_freed_memory() if sys.argv[1] == "tune" else False
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.empty(8 * 2**20).fill_(1.0)
    b = torch.empty(4 * 2**20).fill_(1.0)
    del a
    c = torch.empty(12 * 2**20).fill_(1.0)
    del b, c
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"tuned": tuned, "faults": sum(faults[-3:])}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tuning")
def test_reuse_freed_memory_stops_page_faults_on_reallocation():
    default, tuned = _faults("default"), _faults("tune")
    pages = 3 * 96 * 2**20 // 4096  # what three rounds touch
    assert tuned["tuned"] is True
    assert default["faults"] > pages // 2  # glibc unmapped the blocks: faulted in again
    assert tuned["faults"] < pages // 4  # kept in the heap: mostly mapped already


def test_train_keeps_freed_memory(monkeypatch, tmp_path):
    from h2learn.snn import train as train_module

    calls = []
    monkeypatch.setattr(train_module, "reuse_freed_memory", lambda: calls.append(1) or True)
    config = train_module.TrainConfig(epochs=1, limit_train=32, limit_test=16)
    train_module.train(config, tmp_path)
    assert calls == [1]


def test_reuse_freed_memory_is_idempotent():
    first = allocator.reuse_freed_memory()
    assert allocator.reuse_freed_memory() is first
