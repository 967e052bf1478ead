"""Measured mode: time and energy of real BPTT training steps on a CUDA GPU.

:func:`measure_training_step` builds a zoo model on the GPU and times real
training iterations (Adam, cross-entropy, the same step as
:mod:`h2learn.snn.train`) with CUDA events.  Energy comes from NVML's
``nvmlDeviceGetTotalEnergyConsumption`` counter (board energy in millijoules
since the driver loaded; Volta and newer) through the ``pynvml`` module of
the ``nvidia-ml-py`` package, when that is importable; otherwise only time is
reported, with a note saying why.  Without a CUDA GPU the function returns
``None`` and logs the reason; it never raises for that.

Command line (prints JSON)::

    python -m h2learn.baselines.gpu_measure --model cifar-vgg --batch-size 16

The input is a fixed random batch already on the GPU, so the figures cover
the training step itself (no data loading or host-to-device copy), which is
what :func:`h2learn.baselines.gpu.v100_training_step` models.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from typing import Any

from h2learn.baselines.gpu import v100_training_step
from h2learn.errors import H2LearnError
from h2learn.spec import Workload, build_spec

log = logging.getLogger(__name__)


class MeasureError(H2LearnError, ValueError):
    """Arguments of a measurement are invalid; the message names the fix."""


def gpu_unavailable_reason() -> str | None:
    """Why measured mode cannot run here, or ``None`` when a CUDA GPU is usable."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        build = "a CPU-only PyTorch build" if torch.version.cuda is None else "no visible CUDA GPU"
        return f"torch.cuda.is_available() is False ({build}); measured mode needs a CUDA GPU"
    return None


class EnergyCounter:
    """NVML's board energy counter for one CUDA device, or a note saying why there is none.

    Represents the GPU's on-board power sensor integrated by the driver
    (``nvmlDeviceGetTotalEnergyConsumption``, millijoules, Volta and newer).
    """

    def __init__(self, device_index: int) -> None:
        self.note = ""
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml  # provided by the nvidia-ml-py package
        except ImportError:
            self.note = "pynvml (pip install nvidia-ml-py) is not importable; time only"
            return
        try:
            pynvml.nvmlInit()
            self._handle = _nvml_handle(pynvml, device_index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self._nvml = pynvml
        except Exception as exc:  # noqa: BLE001 - any NVML failure means no energy reading
            self.note = f"NVML energy counter unavailable ({type(exc).__name__}: {exc}); time only"
            self._handle = None

    @property
    def available(self) -> bool:
        """Whether NVML's energy counter can be read on this device."""
        return self._nvml is not None

    def close(self) -> None:
        """Release NVML (it counts initialisations, so this pairs with ours)."""
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None

    def read_j(self) -> float | None:
        """Board energy since driver load, in joules (``None`` if unavailable)."""
        if not self.available:
            return None
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


def _nvml_handle(pynvml: Any, device_index: int) -> Any:
    """The NVML handle of CUDA device ``device_index`` (matched by PCI bus id when possible).

    CUDA and NVML may number devices differently (``CUDA_VISIBLE_DEVICES``).
    """
    import torch

    props = torch.cuda.get_device_properties(device_index)
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        bus_id = (
            f"{getattr(props, 'pci_domain_id', 0):08x}:{bus:02x}:"
            f"{getattr(props, 'pci_device_id', 0):02x}.0"
        )
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        except Exception:  # noqa: BLE001 - fall back to the index
            log.debug("NVML found no device at PCI bus id %s; using index", bus_id)
    return pynvml.nvmlDeviceGetHandleByIndex(device_index)


def _check_arguments(batch_size: int, time_steps: int | None, steps: int, warmup: int) -> None:
    if batch_size < 1:
        raise MeasureError(f"batch_size={batch_size} must be at least 1")
    if time_steps is not None and time_steps < 1:
        raise MeasureError(f"time_steps={time_steps} must be at least 1 (or None for the default)")
    if steps < 1:
        raise MeasureError(f"steps={steps} must be at least 1")
    if warmup < 0:
        raise MeasureError(f"warmup={warmup} must be 0 or more")


def _spec(model_name: str, batch_size: int, time_steps: int | None) -> Workload:
    overrides: dict[str, Any] = {"batch_size": batch_size}
    if time_steps is not None:
        overrides["time_steps"] = time_steps
    return build_spec(model_name, **overrides)


def _modelled(spec: Workload) -> dict[str, float]:
    result = v100_training_step(spec)
    return {"seconds": result.seconds, "energy_j": result.energy_j, "power_w": result.power_w}


def measure_training_step(
    model_name: str,
    batch_size: int,
    time_steps: int | None = None,
    steps: int = 20,
    warmup: int = 5,
    *,
    device_index: int = 0,
    seed: int = 0,
    lr: float = 2e-3,
) -> dict[str, Any] | None:
    """Time real training steps of zoo model ``model_name`` on a CUDA GPU.

    Runs ``warmup`` untimed steps (cuDNN autotuning, allocator warm-up), then
    ``steps`` timed ones back to back, recording a CUDA event after each, so
    a step's time is the GPU-side interval between events (including any
    idle gaps while the host launches kernels).  Energy per step is the NVML
    counter difference over the timed steps divided by ``steps``; use enough
    steps for about a second of work, since the counter updates in coarse
    increments.  Returns ``None`` (and logs why) when no CUDA GPU is usable.
    """
    _check_arguments(batch_size, time_steps, steps, warmup)
    spec = _spec(model_name, batch_size, time_steps)  # validates the name and overrides
    reason = gpu_unavailable_reason()
    if reason is not None:
        log.warning("measured mode skipped: %s", reason)
        return None
    return _run(spec, steps, warmup, device_index, seed, lr)


def _synthetic_batch(spec: Workload, device: Any) -> tuple[Any, Any]:
    """A fixed random batch shaped like the dataset's (events batch-major, as loaders give them)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    batch = spec.batch_size
    if spec.input_kind != "image":  # events or spikes: one frame per step
        shape = (batch, spec.time_steps, *spec.input_shape)
    else:
        shape = (batch, *spec.input_shape)
    x = torch.rand(shape, generator=generator)
    y = torch.randint(0, spec.num_classes, (batch,), generator=generator)
    return x.to(device), y.to(device)


def _run(
    spec: Workload, steps: int, warmup: int, device_index: int, seed: int, lr: float
) -> dict[str, Any]:
    import torch

    device = torch.device("cuda", device_index)
    with torch.cuda.device(device):
        return _timed_steps(spec, steps, warmup, device, seed, lr)


def _timed_steps(
    spec: Workload, steps: int, warmup: int, device: Any, seed: int, lr: float
) -> dict[str, Any]:
    """Warm up, then time ``steps`` training steps with CUDA events and the NVML counter."""
    import torch

    from h2learn.snn.models import SpikingNetwork
    from h2learn.snn.train import loss_fn, to_time_major

    torch.manual_seed(seed)
    model = SpikingNetwork(spec).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = _synthetic_batch(spec, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(to_time_major(x, model)), y, "ce")
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize(device)
    counter = EnergyCounter(device.index)
    energy_source = "nvmlDeviceGetTotalEnergyConsumption" if counter.available else None
    try:
        events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
        energy_start_j = counter.read_j()
        wall_start = time.perf_counter()
        events[0].record()
        for i in range(steps):
            step()
            events[i + 1].record()
        torch.cuda.synchronize(device)
        wall_seconds = time.perf_counter() - wall_start
        energy_end_j = counter.read_j()
    finally:
        counter.close()
    step_seconds = [events[i].elapsed_time(events[i + 1]) / 1e3 for i in range(steps)]
    energy_j = None
    power_w = None
    if energy_start_j is not None and energy_end_j is not None:
        energy_j = (energy_end_j - energy_start_j) / steps
        power_w = (energy_end_j - energy_start_j) / wall_seconds
    return {
        "gpu_name": torch.cuda.get_device_name(device),
        "model": spec.name,
        "batch_size": spec.batch_size,
        "time_steps": spec.time_steps,
        "dtype": "float32",
        "steps": steps,
        "warmup": warmup,
        "seconds_per_step": statistics.fmean(step_seconds),
        "seconds_per_step_median": statistics.median(step_seconds),
        "seconds_per_step_min": min(step_seconds),
        "step_seconds": step_seconds,
        "wall_seconds": wall_seconds,
        "energy_j_per_step": energy_j,
        "power_w": power_w,
        "energy_source": energy_source,
        "note": counter.note,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "modelled_v100": _modelled(spec),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m h2learn.baselines.gpu_measure``: measure one model and print JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m h2learn.baselines.gpu_measure",
        description="Time (and with NVML, energy of) real BPTT training steps on a CUDA GPU.",
    )
    parser.add_argument("--model", default="cifar-vgg", help="zoo model name")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--time-steps", type=int, default=None, help="default: the model's T")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    args = parser.parse_args(argv)
    try:
        result = measure_training_step(
            args.model,
            args.batch_size,
            args.time_steps,
            args.steps,
            args.warmup,
            device_index=args.device,
        )
        if result is None:
            spec = _spec(args.model, args.batch_size, args.time_steps)
            result = {
                "available": False,
                "reason": gpu_unavailable_reason(),
                "model": spec.name,
                "batch_size": spec.batch_size,
                "time_steps": spec.time_steps,
                "modelled_v100": _modelled(spec),
            }
        else:
            result = {"available": True, **result}
    except H2LearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
