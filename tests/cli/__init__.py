"""Tests of :mod:`h2learn.cli`."""
