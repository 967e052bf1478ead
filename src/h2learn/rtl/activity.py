"""Switching activity of the RTL PEs on real training data (a recorded BPTT trace).

The energy of an action is priced from the toggles it causes
(:mod:`h2learn.rtl.cost_table`).  Here each PE runs, in Amaranth's simulator,
on the operands of a recorded training iteration: the default trace is one
iteration of the ``digits-mlp`` model on the first four samples of the
scikit-learn digits set (bundled with scikit-learn, so it is offline and
repeatable).  Its spiking fully connected layer supplies the weights, input
spikes, gradients ``dL/dpsum`` and surrogate masks; its firing layer the LIF
input currents.  Values are converted into the datapath's format (stored
integers in fixed point, IEEE bit patterns in a floating format), exactly as
the engines would see them.

For each PE the toggles of chosen signal groups (the ports of its adder,
multiplier, comparators and table bank) are counted per command type
(:func:`h2learn.rtl.simulate.measure_toggles`); ``activity = toggled bits /
observed bits`` per cycle of that command.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from h2learn.rtl.datapath import RtlFormat, stored_words
from h2learn.rtl.fixed import RtlError
from h2learn.rtl.lif_unit import LifUnit, lif_commands, lif_constants
from h2learn.rtl.pe_backward import MacPE, backward_commands
from h2learn.rtl.pe_forward import forward_commands, forward_pe
from h2learn.rtl.pe_lut import CMD_BUILD, LutPE
from h2learn.rtl.pe_update import update_commands, update_pe
from h2learn.rtl.simulate import measure_toggles

SYNTH_TABLES = 2
"""Tables in the synthesized and simulated LUT bank [ours: the smallest bank that exercises
table addressing; the configured bank size scales area per bit, docs/rtl.md]."""
BACKWARD_MAX_TERMS = 4608
"""Terms one Backward Engine output may sum: 512 output channels x 3x3 taps (cifar-vgg's
widest layer) [ours]; sizes the MAC accumulator."""
LIF_ALPHA, LIF_V_TH, LIF_WINDOW = 0.25, 0.25, 0.5
"""LIF constants of the activity run: the gpu-lib defaults (SYSTEM.md section 1)."""
MAX_NEURONS = 64


@dataclass(frozen=True)
class TraceOperands:
    """The real operands the activity runs use (float tensors, as recorded)."""

    weights: torch.Tensor  # [O, F] of a spiking fc layer
    spikes: torch.Tensor  # [T, B, F] its input spikes
    grads: torch.Tensor  # [T, B, O] dL/dpsum
    lower_mask: torch.Tensor  # [T, B, F]
    currents: torch.Tensor  # [T, B, N] LIF input currents of a firing layer
    source: str


@lru_cache(maxsize=1)
def default_operands() -> TraceOperands:
    """Record the default trace (digits-mlp, digits, 4 samples, seed 0) and take its operands."""
    from h2learn.workload.record import record_from_dataset

    trace = record_from_dataset("digits-mlp", "digits", batch_size=4, seed=0)
    spiking = next(r for r in trace if r.spec.binary_input and "lower_mask" in r.tensors)
    firing = next(r for r in trace if r.spec.fires)
    return TraceOperands(
        spiking.tensors["weight"],
        spiking.tensors["input"],
        spiking.tensors["grad_psum"],
        spiking.tensors["lower_mask"],
        firing.tensors["current"],
        f"trace digits-mlp on digits (4 samples, seed 0): {spiking.spec.name}, {firing.spec.name}",
    )


def _lut_groups(pe: LutPE) -> dict[str, list]:
    datapath = [pe.adder.a, pe.adder.b, pe.adder.sum, pe.adder.acc, pe.out_data]
    bank = pe.bank
    ports = [bank.read_addr, bank.read_data, bank.write_addr, bank.write_data, bank.write_en]
    return {"datapath": datapath, "bank": ports}


def _lut_labels(commands: list[tuple]) -> list[str]:
    labels = []
    for command in commands:
        if command[0] == CMD_BUILD:
            labels.append("build")
        else:
            labels.append("skip" if command[1] == 0 else "lookup")
    return labels


def forward_activity(k: int, fmt: RtlFormat, data: TraceOperands) -> dict:
    """Toggles of the Forward Engine lane on the trace's weights and spikes (fan-in slice)."""
    fan_in = k * SYNTH_TABLES
    weights = stored_words(data.weights[:, :fan_in], fmt).tolist()
    spikes = data.spikes[..., :fan_in].reshape(-1, fan_in).int().tolist()
    commands, _ = forward_commands(weights, spikes, k)
    pe = forward_pe(k, fmt, SYNTH_TABLES)
    return measure_toggles(pe, pe.inputs(), commands, _lut_labels(commands), _lut_groups(pe))


def update_activity(k: int, fmt: RtlFormat, block: int, data: TraceOperands) -> dict:
    """Toggles of the Weight Update Engine lane on the trace's gradients and spikes."""
    points = k * SYNTH_TABLES
    grads = stored_words(data.grads.reshape(-1, data.grads.shape[-1])[:points].t(), fmt).tolist()
    spikes = data.spikes.reshape(-1, data.spikes.shape[-1])[:points].t()[:MAX_NEURONS]
    commands, _ = update_commands(grads, spikes.int().tolist(), k, block)
    pe = update_pe(k, fmt, SYNTH_TABLES, block, points)
    return measure_toggles(pe, pe.inputs(), commands, _lut_labels(commands), _lut_groups(pe))


def backward_activity(fmt: RtlFormat, data: TraceOperands) -> dict:
    """Toggles of the Backward Engine MAC on the trace's weights, gradients and masks."""
    channels = min(MAX_NEURONS, data.weights.shape[1])
    weights = stored_words(data.weights[:, :channels], fmt).tolist()
    grads = stored_words(data.grads.reshape(-1, data.grads.shape[-1]), fmt).tolist()
    masks = data.lower_mask[..., :channels].reshape(-1, channels).int().tolist()
    commands, _ = backward_commands(weights, grads, masks)
    pe = MacPE(fmt, BACKWARD_MAX_TERMS)
    labels = [
        "skip_output" if not c[3] else ("skip_input" if c[2] == 0 else "mac") for c in commands
    ]
    groups = {
        "multiplier": [pe.multiplier.a, pe.multiplier.b, pe.multiplier.product],
        "datapath": [pe.adder.a, pe.adder.b, pe.adder.sum, pe.adder.acc, pe.out_data],
    }
    return measure_toggles(pe, pe.inputs(), commands, labels, groups)


def lif_activity(fmt: RtlFormat, data: TraceOperands) -> dict:
    """Toggles of the LIF unit on the trace's input currents (gpu-lib constants)."""
    currents = data.currents.reshape(data.currents.shape[0], -1)[:, :MAX_NEURONS]
    stored = stored_words(currents, fmt).t().tolist()  # [neuron][t]
    constants = lif_constants(fmt, LIF_ALPHA, LIF_V_TH, LIF_WINDOW)
    commands, _ = lif_commands(stored, constants)
    unit = LifUnit(fmt)
    groups = {
        "multiplier": [unit.multiplier.a, unit.multiplier.b, unit.multiplier.product],
        "adder": [unit.adder.a, unit.adder.b, unit.adder.sum, unit.out_u],
        "comparator": [s for c in unit.comparators for s in (c.a, c.b, c.gt)],
    }
    return measure_toggles(unit, unit.inputs(), commands, ["step"] * len(commands), groups)


def activity_factor(activity: dict, group: str, label: str) -> float:
    """Toggled bits per observed bit in a cycle of command ``label`` (0 if it never ran)."""
    entry = activity[group]
    if entry["bits"] <= 0:
        raise RtlError(f"activity group {group} observes no bits")
    return entry.get(label, 0.0) / entry["bits"]
