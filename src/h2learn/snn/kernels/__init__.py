"""Fused C++ kernels for the CPU, compiled on first use.

The LIF neuron's time loop (:mod:`h2learn.snn.neuron`) has two
implementations that compute the same values:

* ``"torch"``: PyTorch operators, one elementwise kernel per operation and time
  step.  Always available, any device and dtype.
* ``"cpp"``: ``lif.cpp`` next to this file, one pass over all ``T`` steps per
  block of elements (float32/float64 CPU tensors).  It is compiled with
  PyTorch's extension builder the first time it is needed (about 40 s; the
  build is cached per user and PyTorch installation, see
  :func:`build_directory`) and needs a C++ compiler and ``ninja``.

``H2LEARN_LIF_BACKEND`` chooses: ``auto`` (default: ``cpp`` when it builds,
otherwise ``torch`` with one warning), ``cpp`` (fail with a clear error if it
cannot be built) or ``torch``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

BACKENDS = ("auto", "cpp", "torch")
_SOURCE = Path(__file__).with_name("lif.cpp")


def _build_name() -> str:
    """The extension's name: one build folder per PyTorch installation.

    Two virtual environments of one user then do not rebuild the kernel over
    each other every time one of them runs.
    """
    key = f"{torch.__version__}|{Path(torch.__file__).resolve().parent}"
    return "h2learn_lif_" + hashlib.sha1(key.encode()).hexdigest()[:10]


_NAME = _build_name()
_STALE_LOCK_SECONDS = 600  # a build lock this old was left by a killed build


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be compiled or loaded."""


def requested_backend() -> str:
    """The LIF backend asked for by ``H2LEARN_LIF_BACKEND`` (default ``auto``)."""
    value = os.environ.get("H2LEARN_LIF_BACKEND", "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(
            f"H2LEARN_LIF_BACKEND={value!r} is not a LIF backend; use one of: {', '.join(BACKENDS)}"
        )
    return value


@contextmanager
def lif_backend(name: str) -> Iterator[None]:
    """Run the LIF neuron on backend ``name`` inside the ``with`` block.

    Sets ``H2LEARN_LIF_BACKEND`` for the block and restores it afterwards.  The
    forward pass decides, and its backward pass follows that decision.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown LIF backend {name!r}; use one of: {', '.join(BACKENDS)}")
    before = os.environ.get("H2LEARN_LIF_BACKEND")
    os.environ["H2LEARN_LIF_BACKEND"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("H2LEARN_LIF_BACKEND", None)
        else:
            os.environ["H2LEARN_LIF_BACKEND"] = before


@functools.cache
def _build() -> str | None:
    """Compile and load ``lif.cpp`` once per process; the error text if that fails."""
    try:
        from torch.utils import cpp_extension

        _find_ninja()
        build_dir = build_directory()
        build_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_lock(build_dir / "lock")
        if not (build_dir / f"{_NAME}.so").exists():
            print("h2learn: compiling the fused LIF kernel (first use only)", file=sys.stderr)
        cpp_extension.load(
            name=_NAME,
            sources=[str(_SOURCE)],
            # -fopenmp: at::parallel_for's OpenMP loop lives in the headers.
            # -ffp-contract=off: round every product and sum separately, as the
            # PyTorch operators of the reference path do.  -fno-trapping-math
            # lets the compiler evaluate both sides of a 0/1 choice and select
            # (so the loops vectorise); it changes no result, only the
            # assumption that floating-point exception flags are observed.
            extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math"],
            build_directory=str(build_dir),
            is_python_module=False,
            verbose=False,
        )
    except Exception as error:  # compiler missing, ninja missing, build failure
        message = str(error).strip().splitlines()
        return message[-1] if message else type(error).__name__
    return None


def build_directory() -> Path:
    """Where the kernel is compiled and cached.

    ``$TORCH_EXTENSIONS_DIR/<name>`` when that variable is set (PyTorch's own
    convention), else ``$XDG_CACHE_HOME/h2learn/kernels/<name>`` (default
    ``~/.cache``).  Choosing it here, rather than asking PyTorch's builder,
    lets :func:`_build` find a stale lock with public API only.
    """
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root) / _NAME
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "h2learn" / "kernels" / _NAME


def _find_ninja() -> None:
    """Put the ``ninja`` Python package's binary on ``PATH`` if no other ninja is there."""
    if shutil.which("ninja") is not None:
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _remove_stale_lock(lock: Path) -> None:
    """PyTorch's builder waits forever on the lock of a build that was killed: drop old ones."""
    try:
        if time.time() - lock.stat().st_mtime > _STALE_LOCK_SECONDS:
            lock.unlink()
    except FileNotFoundError:
        pass


def compiler_on_path() -> bool:
    """Whether a C++ compiler (``$CXX``, else ``c++``) is on ``PATH`` to build the kernel."""
    return shutil.which(os.environ.get("CXX", "c++")) is not None


def lif_kernel_available() -> bool:
    """Whether the fused C++ LIF kernel is built and loaded (building it if needed)."""
    return _build() is None


def use_cpp_lif(x: torch.Tensor) -> bool:
    """Whether the LIF neuron should run ``x`` on the fused C++ kernel."""
    backend = requested_backend()
    if backend == "torch":
        return False
    suitable = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if backend == "cpp":
        if not suitable:
            raise KernelBuildError(
                f"H2LEARN_LIF_BACKEND=cpp runs float32/float64 CPU tensors only, got "
                f"{x.dtype} on {x.device}; unset it to use the PyTorch path"
            )
        error = _build()
        if error is not None:
            raise KernelBuildError(
                f"the C++ LIF kernel did not build ({error}); install a C++ compiler and ninja, "
                "or set H2LEARN_LIF_BACKEND=torch"
            )
        return True
    if not suitable:
        return False
    error = _build()
    if error is not None:
        _warn_once(error)
        return False
    return True


@functools.cache
def _warn_once(error: str) -> None:
    warnings.warn(
        f"h2learn: the fused C++ LIF kernel did not build ({error}); using the slower "
        "PyTorch path. Set H2LEARN_LIF_BACKEND=torch to silence this.",
        RuntimeWarning,
        stacklevel=3,
    )
