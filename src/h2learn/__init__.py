"""h2learn: BPTT training of spiking neural networks and a model of the H2Learn accelerator."""

__version__ = "0.1.0"
