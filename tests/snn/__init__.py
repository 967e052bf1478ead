"""Tests of :mod:`h2learn.snn`."""
