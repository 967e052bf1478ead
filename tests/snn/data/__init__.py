"""Tests of :mod:`h2learn.snn.data`, one file per dataset module."""
