"""Workload: training iterations recorded as traces, and their sparsity statistics."""

from h2learn.workload.trace import Trace, TraceError, record_trace

__all__ = ["Trace", "TraceError", "record_trace"]
