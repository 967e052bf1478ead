"""Tests of :mod:`h2learn.workload`."""
