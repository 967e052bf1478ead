"""Keep freed memory in the process for reuse (glibc ``malloc`` tuning).

PyTorch's CPU tensors come straight from ``malloc`` and go back with ``free``.
glibc serves every block above its mmap threshold (at most 32 MiB, usually far
less) with fresh pages from the kernel and unmaps them on ``free``.  A training
step allocates and frees the same large activations and gradients every time,
so every step pays a page fault for each 4 KiB of them, and the kernel zeroes
every page: on a 2-core machine that was a large share of a small network's
step (measured by ``benchmarks/bench_training_step.py --no-malloc-tuning``;
numbers in ``docs/results.md``).

:func:`reuse_freed_memory` tells glibc to serve all blocks from its heap and
to keep freed memory there, so later steps reuse pages that are already
mapped.  Same effect as the documented environment variables
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>`` (glibc's ``mallopt(3)``)
but set from inside the process.  The cost: the process keeps its peak
footprint instead of handing memory back between steps.  ``h2learn train``
and the benchmarks call it; a library user may call it or not.  Elsewhere
(macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# mallopt(3) parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_KEEP = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB of free heap top


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse; ``True`` if the setting took effect."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, _KEEP))
