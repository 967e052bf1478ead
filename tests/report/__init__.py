"""Tests of :mod:`h2learn.report`."""
