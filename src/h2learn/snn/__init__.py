"""Learning: LIF neurons with a hand-written BPTT, spiking layers, the model zoo, data, trainer."""

from h2learn.snn.blocks import (
    AvgPool2d,
    Flatten,
    MaxPool2d,
    SpikingConv2d,
    SpikingLinear,
    StaticInput,
    TimeDistributed,
    fuse_pooling,
)
from h2learn.snn.neuron import LIF, lif, lif_states
from h2learn.spec import LIFParams

__all__ = [
    "LIF",
    "AvgPool2d",
    "Flatten",
    "LIFParams",
    "MaxPool2d",
    "SpikingConv2d",
    "SpikingLinear",
    "StaticInput",
    "TimeDistributed",
    "fuse_pooling",
    "lif",
    "lif_states",
]
