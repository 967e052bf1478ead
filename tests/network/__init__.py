"""Tests of :mod:`h2learn.network`."""
