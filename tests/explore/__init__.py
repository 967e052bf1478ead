"""Tests of :mod:`h2learn.explore`."""
