"""Learning: LIF neurons with a hand-written BPTT, spiking layers, the model zoo, data, trainer."""

from h2learn.snn.neuron import LIF, lif, lif_states
from h2learn.spec import LIFParams

__all__ = ["LIF", "LIFParams", "lif", "lif_states"]
