"""Hardware configuration of the H2Learn accelerator model (validated, loadable from YAML).

A :class:`HardwareConfig` describes one accelerator instance: clock, technology
node and supply, datapath number format, the three engines (Forward Engine and
Weight Update Engine with LUT-based PEs, Backward Engine with MAC PEs), the
element-wise units, the four on-chip buffers, DRAM, the optimisation switches
and the schedule.  It is the *architecture* input of the model (Timeloop
style); the workload is a trace or a network spec, and the mapping lives in
:mod:`h2learn.arch.mapping` and :mod:`h2learn.arch.pipeline`.

The defaults of every field are the project's default H2Learn instance,
mirrored by ``configs/h2learn.yaml``; ``docs/cost-model.md`` justifies each
value.  The paper's abstract gives no design parameters, so every value here
is [ours] unless its field says otherwise.

Invalid values are rejected with a :class:`ConfigError` whose one-line message
names the field path, e.g. ``backward_engine.pe_count: must be >= 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from h2learn.arch.numerics import FormatError, NumberFormat, parse_format
from h2learn.errors import H2LearnError

SUPPORTED_NODES_NM: tuple[int, ...] = (180, 130, 90, 65, 45, 32, 28, 20, 16, 14, 10, 7)
"""Technology nodes with Stillmaker & Baas (2017) scaling factors (see :mod:`h2learn.arch.cost`);
28 nm is interpolated between their 32 and 20 nm rows
(:data:`h2learn.arch.cost.reference.INTERPOLATED_NODES_NM`)."""

SWITCHES: tuple[str, ...] = (
    "lut",
    "skip_zero_patterns",
    "input_sparsity",
    "output_sparsity",
    "pipeline",
)
"""The optimisation switches :meth:`HardwareConfig.with_switches` accepts."""


class ConfigError(H2LearnError, ValueError):
    """A hardware configuration is missing, unreadable or invalid; the message names the field."""


class _Section(BaseModel):
    """A config section: unknown fields are errors, instances are immutable.

    Numbers and switches are not confused: ``pe_count: true`` or ``lut: 1``
    (which pydantic would coerce to 1 and True) are errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_switches(cls, value: Any, info: ValidationInfo) -> Any:
        kind = cls.model_fields[info.field_name].annotation if info.field_name else None
        if isinstance(value, bool) and kind in (int, float):
            raise ValueError(f"must be a number, got {str(value).lower()}")
        if kind is bool and isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value


class ForwardEngineConfig(_Section):
    """Forward Engine: LUT-based PEs computing ``W (*) spikes``.

    Mapping [ours]: PE ``p`` owns output channels ``o = p, p + pe_count, ...``
    (one per pass); its ``lanes_per_pe`` lanes own the fan-in groups
    ``g = l, l + lanes, ...`` and each has a private LUT bank of
    ``lut_entries_per_lane`` entries; an adder tree sums the lanes' lookups.
    """

    pe_count: int = Field(128, ge=1)
    lanes_per_pe: int = Field(16, ge=1)
    lut_group_size: int = Field(4, ge=1, le=12)
    lut_entries_per_lane: int = Field(1024, ge=2)


class BackwardEngineConfig(_Section):
    """Backward Engine: MAC PEs computing ``W^T (*) du`` with input and output sparsity.

    Mapping [ours]: the lower layer's elements ``(c, y, x)`` of every time step
    are dealt skewed round-robin (flat index) to the ``pe_count * macs_per_pe``
    MAC units.  The encoding layer's forward and weight update (analog inputs,
    real multiplications) also run here: it is the only engine with multipliers.
    """

    pe_count: int = Field(256, ge=1)
    macs_per_pe: int = Field(16, ge=1)
    register_file_bytes: int = Field(512, ge=4)


class UpdateEngineConfig(_Section):
    """Weight Update Engine: LUT-based PEs computing ``dW = du (x) spikes``.

    Mapping [ours]: PE ``p`` owns output channels ``i = p, p + pe_count, ...``;
    lanes own point groups ``q = l, l + lanes, ...`` (tables of ``du`` subset
    sums); presynaptic inputs stream through all lanes; a PE merges its
    partial ``dW`` into the gradient buffer every ``partial_sum_groups`` point
    groups.
    """

    pe_count: int = Field(128, ge=1)
    lanes_per_pe: int = Field(16, ge=1)
    lut_group_size: int = Field(4, ge=1, le=12)
    lut_entries_per_lane: int = Field(64, ge=2)
    partial_sum_groups: int = Field(64, ge=1)


class ElementwiseConfig(_Section):
    """Element-wise units (LIF forward/backward, batch norm, pooling, loss, optimizer).

    ``lanes`` neuron-steps (or elements) per cycle, each lane a multiplier, an
    adder and a comparator [ours].
    """

    lanes: int = Field(256, ge=1)


class BufferConfig(_Section):
    """One on-chip SRAM buffer: capacity, port width and independent banks."""

    size_kib: float = Field(gt=0)
    width_bits: int = Field(ge=8)
    banks: int = Field(ge=1)

    @property
    def size_bytes(self) -> float:
        return self.size_kib * 1024.0

    @property
    def bank_kib(self) -> float:
        return self.size_kib / self.banks

    @property
    def bits_per_cycle(self) -> int:
        """Peak bandwidth: every bank delivers one ``width_bits`` word per cycle."""
        return self.width_bits * self.banks


class BuffersConfig(_Section):
    """The four global buffers (what lives where: docs/cost-model.md, memory model)."""

    weight: BufferConfig = BufferConfig(size_kib=10240, width_bits=512, banks=32)
    activation: BufferConfig = BufferConfig(size_kib=8192, width_bits=512, banks=32)
    gradient: BufferConfig = BufferConfig(size_kib=16384, width_bits=512, banks=32)
    membrane: BufferConfig = BufferConfig(size_kib=4096, width_bits=512, banks=16)


class DRAMConfig(_Section):
    """Off-chip memory: one HBM2 stack by default (JEDEC JESD235: 1024 pins x 2 Gb/s)."""

    kind: str = "HBM2"
    bandwidth_gbps: float = Field(256.0, gt=0)
    energy_pj_per_bit: float = Field(3.9, gt=0)

    @field_validator("kind")
    @classmethod
    def _kind_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class OptimizationConfig(_Section):
    """H2Learn's optimisations, each a switch (ablations turn them off one by one).

    ``lut``: LUT-based FE/WUE (off: group size 1, plain accumulation);
    ``skip_zero_patterns``: no lookup for all-zero spike patterns;
    ``input_sparsity`` / ``output_sparsity``: the Backward Engine's dual sparsity;
    ``pipeline``: engines overlap (off: one task at a time).
    """

    lut: bool = True
    skip_zero_patterns: bool = True
    input_sparsity: bool = True
    output_sparsity: bool = True
    pipeline: bool = True


class ScheduleConfig(_Section):
    """How a mini-batch is cut into engine tasks and ordered (the mapping, Timeloop style).

    ``micro_batch``: samples per engine task.  ``bn_batch_statistics``: batch
    norm uses the statistics of the whole mini-batch (exact tdBN, as the GPU
    step), which forces layer-by-layer order; off: sample-by-sample order, the
    paper's FE(b+1) beside BE(b) pipeline.  ``optimizer``: the update step run
    on the element-wise units after the mini-batch (``adam`` as the GPU baseline).
    """

    micro_batch: int = Field(4, ge=1)
    bn_batch_statistics: bool = True
    optimizer: Literal["sgd", "adam"] = "adam"


class HardwareConfig(_Section):
    """One H2Learn accelerator instance; defaults are the project's default design."""

    name: str = "h2learn-default"
    clock_ghz: float = Field(1.0, gt=0, le=10)
    technology_nm: int = 16
    vdd: float = Field(0.8, gt=0.3, le=2.0)
    datapath_format: str = "float32"
    leakage_mw_per_mm2: float = Field(49.1, ge=0)
    cost_table: Literal["published", "synthesized"] = "published"
    """Which per-action prices the cost model uses: ``published`` (the cited tables:
    Horowitz ISSCC 2014 scaled by Stillmaker & Baas 2017, SRAM from Mistry et al.) or
    ``synthesized`` (figures of this project's RTL synthesized by yosys,
    :mod:`h2learn.rtl.cost_table`) for the parts the RTL covers (the engines' adders,
    LUTs and multipliers, the element-wise adder, multiplier and comparator); buffers,
    DRAM and leakage keep the published entries.  The RTL implements fixed point,
    float16, bfloat16 and float32 (not float64).  See docs/cost-model.md and
    docs/rtl.md."""
    forward_engine: ForwardEngineConfig = ForwardEngineConfig()
    backward_engine: BackwardEngineConfig = BackwardEngineConfig()
    update_engine: UpdateEngineConfig = UpdateEngineConfig()
    elementwise: ElementwiseConfig = ElementwiseConfig()
    buffers: BuffersConfig = BuffersConfig()
    dram: DRAMConfig = DRAMConfig()
    optimizations: OptimizationConfig = OptimizationConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    _derived: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("technology_nm")
    @classmethod
    def _known_node(cls, value: int) -> int:
        if value not in SUPPORTED_NODES_NM:
            nodes = ", ".join(map(str, SUPPORTED_NODES_NM))
            raise ValueError(f"{value} nm has no scaling data; use one of {nodes}")
        return value

    @field_validator("datapath_format")
    @classmethod
    def _valid_format(cls, value: str) -> str:
        try:
            parse_format(value)
        except FormatError as exc:
            raise ValueError(str(exc)) from None
        return value

    # -- derived quantities -----------------------------------------------------------------

    @property
    def number_format(self) -> NumberFormat:
        if "format" not in self._derived:
            self._derived["format"] = parse_format(self.datapath_format)
        return self._derived["format"]

    @property
    def word_bits(self) -> int:
        """Bits of one datapath word (weights, potentials, gradients)."""
        return self.number_format.total_bits

    @property
    def forward_group_size(self) -> int:
        """Effective LUT group size of the Forward Engine (1 when the LUT is switched off)."""
        return self.forward_engine.lut_group_size if self.optimizations.lut else 1

    @property
    def update_group_size(self) -> int:
        """Effective LUT group size of the Weight Update Engine (1 when the LUT is off)."""
        return self.update_engine.lut_group_size if self.optimizations.lut else 1

    @property
    def backward_mac_units(self) -> int:
        return self.backward_engine.pe_count * self.backward_engine.macs_per_pe

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram.bandwidth_gbps / self.clock_ghz

    @property
    def cycle_seconds(self) -> float:
        return 1e-9 / self.clock_ghz

    # -- copies -------------------------------------------------------------------------------

    def with_switches(self, **switches: bool) -> HardwareConfig:
        """A copy with optimisation switches changed, e.g. ``with_switches(lut=False)``."""
        unknown = set(switches) - set(SWITCHES)
        if unknown:
            raise ConfigError(
                f"unknown switch {', '.join(sorted(unknown))}; valid: {', '.join(SWITCHES)}"
            )
        merged = {**self.optimizations.model_dump(), **switches}
        return self.replace(optimizations=merged)

    def replace(self, **changes: Any) -> HardwareConfig:
        """A validated copy with top-level fields (or whole sections as dicts) replaced.

        Sections given as dicts are merged field by field; to set one field by its
        dotted path use :func:`set_field`.
        """
        data = {
            key: value.model_dump() if isinstance(value, BaseModel) else value
            for key, value in changes.items()
        }
        return config_from_dict(_deep_merge(self.model_dump(), data))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def field_error(error: Mapping[str, Any], prefix: str = "") -> str:
    """One pydantic field error as ``path: message`` in the project's wording.

    ``prefix`` names the section the model was validated as (``workload``), so
    that every config section reports its errors the same way.
    """
    parts = ([prefix] if prefix else []) + [str(part) for part in error["loc"]]
    path = ".".join(parts) or "config"
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "greater_than_equal":
        message = f"must be >= {ctx['ge']}"
    elif kind == "greater_than":
        message = f"must be > {ctx['gt']}"
    elif kind == "less_than_equal":
        message = f"must be <= {ctx['le']}"
    elif kind == "extra_forbidden":
        message = "unknown field (check the spelling against configs/h2learn.yaml)"
    elif kind == "missing":
        message = "is required"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    return f"{path}: {message}"


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``changes``, section by section (partial sections keep defaults)."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _deep_merge(base[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(data: dict[str, Any]) -> HardwareConfig:
    """Validate a plain dict (as from YAML) over the defaults; errors are one-line ConfigErrors.

    Sections and fields left out keep their defaults, so a file may give only
    what differs from the default design.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a hardware config must be a mapping, got {type(data).__name__}")
    try:
        return HardwareConfig.model_validate(_deep_merge(HardwareConfig().model_dump(), data))
    except ValidationError as exc:
        raise ConfigError("; ".join(field_error(e) for e in exc.errors())) from None


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed content of a YAML config file (None for an empty file).

    Raises a one-line :class:`ConfigError` for a missing file or malformed YAML
    (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no {what} at {path}; see configs/h2learn.yaml for the format")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the syntax") from None


def load_config(path: str | Path) -> HardwareConfig:
    """Read a YAML hardware config; missing sections and fields take the defaults.

    Raises :class:`ConfigError` for a missing file, malformed YAML or invalid
    values (the message names the field path).
    """
    data = read_yaml(path, "hardware config")
    return config_from_dict(data if data is not None else {})


def default_config() -> HardwareConfig:
    """The project's default H2Learn instance (identical to ``configs/h2learn.yaml``)."""
    return HardwareConfig()


def dump_config(config: HardwareConfig) -> str:
    """The config as YAML text (every field, so a file documents the whole design)."""
    return yaml.safe_dump(config.model_dump(), sort_keys=False)


# --------------------------------------------------------------------------
# Editing one field by its dotted path
# --------------------------------------------------------------------------

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "k": ("forward_engine.lut_group_size", "update_engine.lut_group_size"),
}
"""Short names that set several fields at once: ``k`` is the LUT group size of both LUT engines."""


def field_paths(config: HardwareConfig | None = None) -> list[str]:
    """Every settable dotted field path (leaves only), in file order."""
    data = (config or HardwareConfig()).model_dump()

    def walk(node: dict[str, Any], prefix: str) -> list[str]:
        paths: list[str] = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            paths += walk(value, f"{path}.") if isinstance(value, dict) else [path]
        return paths

    return walk(data, "")


def get_field(config: HardwareConfig, path: str) -> Any:
    """The value of the dotted field ``path`` of ``config`` (a leaf or a section).

    ``get_field(config, "buffers.weight.size_kib")``; an unknown path raises the
    one-line :class:`ConfigError` of :func:`set_field`.
    """
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            _assign(config.model_dump(), path, None)  # raises the error naming the choices
        node = getattr(node, part)
    return node


def _assign(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the leaf ``path`` of a dumped config in place; a one-line error names the choices."""
    node: Any = data
    parts = path.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if not isinstance(node, dict):
            raise ConfigError(f"config has no field {path!r} ({where} is a value, not a section)")
        if part not in node:
            choices = sorted(node) if where else sorted([*node, *FIELD_ALIASES])
            scope = f" in {where}" if where else ""
            raise ConfigError(f"config has no field {path!r}; valid{scope}: {', '.join(choices)}")
        if depth == len(parts) - 1:
            if isinstance(node[part], dict):
                fields = ", ".join(f"{path}.{name}" for name in node[part])
                raise ConfigError(
                    f"config has no field {path!r} (it is a section); set one of: {fields}"
                )
            node[part] = value
        node = node[part]


def set_fields(config: HardwareConfig, changes: Mapping[str, Any]) -> HardwareConfig:
    """A copy of ``config`` with each dotted field (or alias such as ``k``) set, validated once.

    ``set_fields(config, {"k": 3, "clock_ghz": 0.8})`` sets both LUT group sizes
    and the clock.  An unknown path raises a one-line :class:`ConfigError` naming
    the valid choices at the level where the path went wrong; an invalid value
    raises the usual field error (``forward_engine.lut_group_size: must be >= 1``).
    """
    data = config.model_dump()
    for name, value in changes.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a config field path must be a non-empty string, got {name!r}")
        for path in FIELD_ALIASES.get(name, (name,)):
            _assign(data, path, value)
    return config_from_dict(data)


def set_field(config: HardwareConfig, path: str, value: Any) -> HardwareConfig:
    """A copy of ``config`` with the dotted field ``path`` set to ``value`` (re-validated).

    Example: ``set_field(config, "forward_engine.lut_group_size", 3)``; the alias
    ``k`` sets the group size of both LUT engines.  Errors as :func:`set_fields`.
    """
    return set_fields(config, {path: value})
