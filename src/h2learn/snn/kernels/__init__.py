"""Fused C++ kernels for the CPU, compiled on first use.

Three pieces of the training step have a PyTorch-operator implementation and
a fused C++ one that computes the same values (``docs/kernels.md``):

* the LIF neuron's time loop (:mod:`h2learn.snn.neuron`, ``lif.cpp``): one
  pass over all ``T`` steps per block of elements instead of one elementwise
  kernel per operation and time step;
* training-mode batch norm with the LIF neuron firing on it, and a max pooling
  behind them (:mod:`h2learn.snn.norm_fire`, ``norm_lif.cpp``): spikes only,
  no saved potentials, batch norm's sums inside the BPTT loop;
* max pooling over non-overlapping windows (:mod:`h2learn.snn.layers`,
  ``pool.cpp``): one-byte argmax indices and a backward pass that writes the
  input gradient once, instead of 64-bit indices, a zero fill and a scatter.

The files are compiled together into one extension with PyTorch's extension
builder the first time a kernel is needed (about a minute; the build is cached
per user and PyTorch installation, see :func:`build_directory`); that needs a
C++ compiler and ``ninja``.  They run float32/float64 CPU tensors.

``H2LEARN_KERNELS`` chooses for all of them: ``auto`` (default: the C++ kernels when
they build, otherwise PyTorch operators with one warning), ``cpp`` (fail with a
clear error if they cannot be built) or ``torch`` (PyTorch operators only).
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
_SOURCES = [Path(__file__).with_name(name) for name in ("lif.cpp", "norm_lif.cpp", "pool.cpp")]
_HEADERS = sorted(Path(__file__).parent.glob("*.h"))  # lif_step.h, pool_step.h
ENV_VAR = "H2LEARN_KERNELS"


def _build_name() -> str:
    """The extension's name: one build folder per PyTorch installation.

    Two virtual environments of one user then do not rebuild the kernel over
    each other every time one of them runs.
    """
    key = f"{torch.__version__}|{Path(torch.__file__).resolve().parent}"
    return "h2learn_kernels_" + hashlib.sha1(key.encode()).hexdigest()[:10]


_NAME = _build_name()
_STALE_LOCK_SECONDS = 600  # a build lock this old was left by a killed build


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be compiled or loaded, or cannot run a tensor."""


def requested_backend() -> str:
    """The kernel backend asked for by ``H2LEARN_KERNELS`` (default ``auto``)."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not a kernel backend; use one of: {', '.join(BACKENDS)}"
        )
    return value


@contextmanager
def kernel_backend(name: str) -> Iterator[None]:
    """Run the LIF neuron, batch norm + LIF and max pooling on backend ``name`` in the block.

    Sets ``H2LEARN_KERNELS`` for the block and restores it afterwards.  Each
    forward pass decides, and its backward pass follows that decision.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; use one of: {', '.join(BACKENDS)}")
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


@functools.cache
def _build() -> str | None:
    """Compile and load the kernels once per process; the error text if that fails."""
    try:
        from torch.utils import cpp_extension

        _find_ninja()
        build_dir = build_directory()
        build_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_lock(build_dir / "lock")
        if not (build_dir / f"{_NAME}.so").exists():
            print("h2learn: compiling the fused C++ kernels (first use only)", file=sys.stderr)
        cpp_extension.load(
            name=_NAME,
            sources=[str(path) for path in _SOURCES],
            # -fopenmp: at::parallel_for's OpenMP loop lives in the headers.
            # -ffp-contract=off: round every product and sum separately, as the
            # PyTorch operators of the reference path do.  -fno-trapping-math
            # lets the compiler evaluate both sides of a 0/1 choice and select
            # (so the loops vectorise); it changes no result, only the
            # assumption that floating-point exception flags are observed.
            extra_cflags=[
                "-O3",
                "-fopenmp",
                "-ffp-contract=off",
                "-fno-trapping-math",
                f"-DH2LEARN_HEADERS_DIGEST={_headers_digest()}",
            ],
            build_directory=str(build_dir),
            is_python_module=False,
            verbose=False,
        )
    except Exception as error:  # compiler missing, ninja missing, build failure
        message = str(error).strip().splitlines()
        return message[-1] if message else type(error).__name__
    return None


def _headers_digest() -> str:
    """A digest of the shared headers, passed as a (never used) macro definition.

    PyTorch's builder rebuilds when a source file or a flag changes but does
    not look at included headers; the digest in the flags makes a header
    change rebuild too.
    """
    digest = hashlib.sha1()
    for path in _HEADERS:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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
    """Whether a C++ compiler (``$CXX``, else ``c++``) is on ``PATH`` to build the kernels."""
    return shutil.which(os.environ.get("CXX", "c++")) is not None


def kernels_available() -> bool:
    """Whether the fused C++ kernels are built and loaded (building them if needed)."""
    return _build() is None


def require_kernels() -> None:
    """Build and load the kernels, or raise :class:`KernelBuildError` saying how to fix it."""
    error = _build()
    if error is not None:
        raise KernelBuildError(
            f"the C++ kernels did not build ({error}); install a C++ compiler and ninja, "
            f"or set {ENV_VAR}=torch"
        )


def use_cpp_kernels(x: torch.Tensor) -> bool:
    """Whether an operation on ``x`` should run on the fused C++ kernels."""
    backend = requested_backend()
    if backend == "torch":
        return False
    suitable = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if backend == "cpp":
        if not suitable:
            raise KernelBuildError(
                f"{ENV_VAR}=cpp runs float32/float64 CPU tensors only, got "
                f"{x.dtype} on {x.device}; unset it to use the PyTorch path"
            )
        require_kernels()
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
        f"h2learn: the fused C++ kernels did not build ({error}); using the slower "
        f"PyTorch operators. Set {ENV_VAR}=torch to silence this.",
        RuntimeWarning,
        stacklevel=3,
    )
