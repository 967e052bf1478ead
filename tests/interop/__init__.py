"""Tests of :mod:`h2learn.interop`."""
