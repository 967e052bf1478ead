"""One comparison: H2Learn, the V100 model and the dense accelerator on one workload.

:func:`compare_designs` is the single composition of the three models and
their ratios (speedup, energy saving, area saving); ``h2learn simulate``, the
demo and the reproduction suite all call it.

A *comparison config* is everything one comparison depends on, in one YAML
file a user can load: the hardware fields of ``configs/h2learn.yaml`` plus two
optional sections,

.. code-block:: yaml

    workload:            # the run (statistical mode); every field optional
      model: cifar-vgg
      num_classes: 10
      time_steps: 6
      batch_size: 16
      densities: {"*": {input: 0.15, mask: 0.35, du_psum: 1.0, lower_mask: 0.35}}
    baseline:
      gpu_numerics: fp32  # a key of h2learn.baselines.gpu.NUMERICS

A plain hardware file is a valid comparison config (both sections take their
defaults).  :func:`load_comparison` reads one, ``h2learn simulate --config``
accepts one, and :func:`compare_config` simulates one alone; the waterfall of
``h2learn reproduce`` writes one per step.  See docs/reproduction.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from h2learn.arch.config import (
    ConfigError,
    HardwareConfig,
    config_from_dict,
    default_config,
    field_error,
    read_yaml,
)
from h2learn.baselines.design import DesignResult
from h2learn.baselines.gpu import NUMERICS, v100_training_step
from h2learn.errors import H2LearnError

if TYPE_CHECKING:
    from h2learn.arch.simulate import SimResult
    from h2learn.baselines.dense import DenseResult
    from h2learn.baselines.gpu import GPUResult
    from h2learn.spec import Workload

GPU_NUMERICS: tuple[str, ...] = tuple(NUMERICS)
"""The names ``baseline.gpu_numerics`` accepts: the keys of the V100 model's
:data:`h2learn.baselines.gpu.NUMERICS` (read from there, never listed here).

``fp32``: every tensor in float32 on the CUDA cores (h2learn's own training
step, and the default).  ``fp16-tensor-core``: PyTorch's automatic mixed
precision, GEMMs in float16 on the tensor cores.  See docs/gpu-baseline.md.
"""

DEFAULT_BATCH_SIZE = 16
"""The mini-batch of a comparison when neither the command line nor the file gives one."""


def ratios(design: DesignResult, baseline: DesignResult) -> dict[str, float]:
    """Speedup, energy saving and area saving of ``design`` against ``baseline``."""
    return {
        "speedup": baseline.seconds / design.seconds,
        "energy_saving": baseline.energy_j / design.energy_j,
        "area_saving": baseline.area_mm2 / design.area_mm2,
    }


# --------------------------------------------------------------------------
# The comparison config
# --------------------------------------------------------------------------


class _Section(BaseModel):
    """A section of a comparison config: unknown fields are errors; counts are strict
    integers (``batch_size: true`` or ``"16"`` is an error, not 1 or 16)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadSection(_Section):
    """The run a comparison simulates (statistical mode); unset fields take the model's defaults."""

    model: str | None = None
    num_classes: int | None = Field(None, ge=1, strict=True)
    time_steps: int | None = Field(None, ge=1, strict=True)
    batch_size: int | None = Field(None, ge=1, strict=True)
    densities: dict[str, dict[str, float | None]] | None = None

    @field_validator("densities")
    @classmethod
    def _densities_in_range(cls, value: dict[str, dict[str, float | None]] | None) -> Any:
        """Fields and ranges checked on load (layer names need the model: checked when run)."""
        from h2learn.workload.densities import ACCEPTED_FIELDS

        for layer, fields in (value or {}).items():
            for key, density in fields.items():
                if key not in ACCEPTED_FIELDS:
                    valid = ", ".join(sorted(ACCEPTED_FIELDS))
                    raise ValueError(f"{layer!r}: unknown field {key!r}; valid: {valid}")
                if density is not None and not 0.0 <= density <= 1.0:
                    raise ValueError(f"{layer!r}.{key}={density} must be in [0, 1]")
        return value


class BaselineSection(_Section):
    """How the V100 side of the comparison is modelled."""

    gpu_numerics: str = "fp32"
    """A key of :data:`h2learn.baselines.gpu.NUMERICS` (:data:`GPU_NUMERICS`)."""

    @field_validator("gpu_numerics")
    @classmethod
    def _known_numerics(cls, value: str) -> str:
        if value not in NUMERICS:
            raise ValueError(f"{value!r} is not known; choose one of: {', '.join(NUMERICS)}")
        return value


def check_gpu_numerics(name: Any) -> str:
    """``name`` if the V100 model knows these numerics; else a one-line :class:`ConfigError`."""
    if not isinstance(name, str) or name not in NUMERICS:
        raise ConfigError(
            f"gpu_numerics={name!r} is not known; choose one of: {', '.join(NUMERICS)}"
        )
    return name


SECTIONS: tuple[str, ...] = ("workload", "baseline")
"""The sections a comparison config adds to a hardware config."""


@dataclass(frozen=True)
class ComparisonConfig:
    """Hardware, workload and baseline of one comparison, as one loadable file."""

    hardware: HardwareConfig
    workload: WorkloadSection = WorkloadSection()
    baseline: BaselineSection = BaselineSection()

    def spec(
        self,
        model: str | None = None,
        batch_size: int | None = None,
        time_steps: int | None = None,
    ) -> Workload:
        """The network of the run; arguments (the command line) win over the file."""
        from h2learn.spec import build_spec

        name = _first(model, self.workload.model)
        if name is None:
            raise H2LearnError("no model: give --model NAME or workload.model in the config")
        overrides: dict[str, Any] = {
            "batch_size": _first(batch_size, self.workload.batch_size, DEFAULT_BATCH_SIZE)
        }
        steps = _first(time_steps, self.workload.time_steps)
        if steps is not None:
            overrides["time_steps"] = steps
        if self.workload.num_classes is not None:
            overrides["num_classes"] = self.workload.num_classes
        return build_spec(name, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """The file's content: every hardware field, then the sections that differ from default."""
        data = self.hardware.model_dump()
        workload = self.workload.model_dump(exclude_none=True)
        if workload:
            data["workload"] = workload
        data["baseline"] = self.baseline.model_dump()
        return data


def _first(*values: Any) -> Any:
    """The first value that is not None (0 and "" are values: they fail validation, not vanish)."""
    return next((value for value in values if value is not None), None)


def comparison_from_dict(data: Mapping[str, Any]) -> ComparisonConfig:
    """Validate a comparison config (a hardware mapping plus optional sections)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a comparison config must be a mapping, got {type(data).__name__}")
    hardware = {key: value for key, value in data.items() if key not in SECTIONS}
    sections: dict[str, Any] = {}
    for name, model in (("workload", WorkloadSection), ("baseline", BaselineSection)):
        given = data.get(name)
        if given is not None and not isinstance(given, Mapping):
            fields = ", ".join(model.model_fields)
            raise ConfigError(
                f"{name}: must be a section (a mapping of {fields}), got {type(given).__name__}"
            )
        try:
            sections[name] = model.model_validate(given or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            message = field_error(first, name)
            if first["type"] == "extra_forbidden":
                where = ".".join(str(part) for part in (name, *first["loc"]))
                message = f"{where}: unknown field; valid: {', '.join(model.model_fields)}"
            raise ConfigError(message) from None
    return ComparisonConfig(config_from_dict(hardware), **sections)


def load_comparison(path: str | Path) -> ComparisonConfig:
    """Read a comparison config (or a plain hardware config) from YAML; one-line errors."""
    data = read_yaml(path, "comparison config")
    return comparison_from_dict(data if data is not None else {})


def dump_comparison(config: ComparisonConfig) -> str:
    """The comparison config as YAML text that :func:`load_comparison` reads back unchanged."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """H2Learn, the V100 model and the dense accelerator on one workload."""

    h2learn: SimResult
    v100: GPUResult
    dense: DenseResult

    @property
    def vs_v100(self) -> dict[str, float]:
        return ratios(self.h2learn, self.v100)

    @property
    def vs_dense(self) -> dict[str, float]:
        return ratios(self.h2learn, self.dense)

    def to_dict(self, timeline: bool = False) -> dict[str, Any]:
        """Every figure of the three designs and both sets of ratios (JSON-ready)."""
        return {
            "h2learn": self.h2learn.to_dict(timeline=timeline),
            "v100_model": self.v100.to_dict(),
            "dense_accelerator": self.dense.to_dict(),
            "v100": self.vs_v100,
            "dense": self.vs_dense,
        }


def workload_spec(workload: Any) -> Workload:
    """The network of a workload at its own batch size and time steps (a spec or a trace)."""
    from h2learn.spec import Workload

    if isinstance(workload, Workload):
        return workload
    from h2learn.workload.trace import Trace

    if isinstance(workload, Trace):
        return Workload(workload.spec.network, workload.batch_size, workload.time_steps)
    raise ConfigError(f"a comparison needs a Trace or a Workload, got {type(workload).__name__}")


def gpu_step(spec: Workload, gpu_numerics: str = "fp32") -> GPUResult:
    """The V100 model's training iteration of ``spec`` in the given numerics (a key of
    :data:`h2learn.baselines.gpu.NUMERICS`: PyTorch AMP for ``fp16-tensor-core``)."""
    return v100_training_step(spec, numerics=check_gpu_numerics(gpu_numerics))


def check_cost_table(config: HardwareConfig) -> None:
    """Refuse, in one line, a ``cost_table`` choice that cannot price ``config``.

    ``cost_table: synthesized`` prices this project's RTL (docs/rtl.md): a
    format it lacks (float64, stochastic rounding), or a machine without Yosys,
    is a :class:`ConfigError`.
    The pricing itself raises it too; this asks without simulating (the
    waterfall decides with it whether a step can run).
    """
    if config.cost_table == "published":
        return
    from h2learn.arch.cost import build_cost_table

    try:
        build_cost_table(config)
    except H2LearnError as exc:
        raise ConfigError(f"cost_table: {config.cost_table!r} does not price: {exc}") from None


def compare_designs(
    workload: Any,
    config: HardwareConfig | None = None,
    densities: Mapping[str, Mapping[str, float | None]] | None = None,
    gpu_numerics: str = "fp32",
) -> Comparison:
    """Simulate ``workload`` on H2Learn, the V100 model and the dense accelerator.

    Args:
        workload: a :class:`~h2learn.workload.trace.Trace` (trace mode) or a
            :class:`~h2learn.spec.Workload` (statistical mode).
        config: the H2Learn design; the dense accelerator shares its area and memory.
        densities: statistical mode only, as for :func:`h2learn.arch.simulate.simulate`.
        gpu_numerics: a key of :data:`GPU_NUMERICS`.
    """
    from h2learn.arch.simulate import simulate
    from h2learn.baselines.dense import simulate_dense

    config = config or default_config()
    spec = workload_spec(workload)
    gpu = gpu_step(spec, gpu_numerics)
    return Comparison(simulate(workload, config, densities), gpu, simulate_dense(workload, config))


def compare_config(config: ComparisonConfig, workload: Any = None) -> Comparison:
    """Simulate a comparison config alone: its hardware, its run (or ``workload``), its baseline."""
    if workload is None:
        workload = config.spec()
        densities = config.workload.densities
    else:
        densities = None
    return compare_designs(workload, config.hardware, densities, config.baseline.gpu_numerics)
