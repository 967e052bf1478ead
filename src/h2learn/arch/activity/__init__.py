"""Event counts of one training iteration per layer, phase and engine task.

Two modes answer the same question (Sparseloop style):

* **trace mode** (:func:`activity_from_trace`, :mod:`~h2learn.arch.activity.trace`):
  exact counts from the real data of a recorded iteration, computed
  *without* the LUT arithmetic: the engines' count formulas are fed with
  zero-pattern counts and non-zero link counts taken from the tensors by
  cheap boolean reductions;
* **statistical mode** (:func:`activity_from_densities`,
  :mod:`~h2learn.arch.activity.statistical`): expected counts from per-layer
  densities (a k-bit pattern over ``v`` real inputs of density ``d`` is
  all-zero with probability ``(1 - d)**v``; padding taps are never set).

Work is cut into *tasks* (:mod:`~h2learn.arch.activity.tasks`): one engine
working on one layer for one micro-batch of ``schedule.micro_batch`` samples.
Besides its event counts a task carries the mapping statistics that set its
cycles: the busiest lane's or MAC unit's load under the engines' round-robin
mappings (:mod:`h2learn.arch.mapping`), so load imbalance from real sparsity
is counted as the maximum over lanes, not the average
(:mod:`~h2learn.arch.activity.loadstats`).  The builder
(:mod:`~h2learn.arch.activity.builder`) assembles the tasks from a
:class:`CountProvider`; :mod:`h2learn.arch.actions` turns their counts into
``(component, action)`` counts for the cost table.

The package restates no count formula: every count comes from the engines'
data-free ``*_counts`` functions (``tests/arch/test_formula_parity.py``).
"""

from h2learn.arch.activity.builder import (
    ActivityBuilder,
    CountProvider,
    activity_from_densities,
    activity_from_trace,
    apply_table_policy,
    engine_for,
    kind_of,
)
from h2learn.arch.activity.dense import (
    dense_forward_work,
    dense_task,
    dense_update_work,
)
from h2learn.arch.activity.elementwise import parameter_count
from h2learn.arch.activity.loadstats import expected_busiest_mac_unit, expected_max
from h2learn.arch.activity.statistical import (
    StatisticalProvider,
    expected_backward,
    expected_forward,
    expected_update,
)
from h2learn.arch.activity.tasks import (
    Activity,
    ActivityError,
    ElementwiseWork,
    LutWork,
    MacWork,
    TaskActivity,
    Work,
)
from h2learn.arch.activity.trace import TraceProvider
from h2learn.arch.engines.forward import dense_forward_counts
from h2learn.arch.engines.update import dense_update_counts
from h2learn.arch.mapping import (
    layer_major,
    mac_unit_of,
    micro_batches,
    replicas,
    update_block_groups,
)
from h2learn.arch.names import ENGINES, PHASES
from h2learn.workload.densities import (
    DEFAULT_MASK_DENSITY,
    DEFAULT_SPIKE_DENSITY,
    default_densities,
    densities_from_trace,
    resolve_densities,
)

__all__ = [
    "DEFAULT_MASK_DENSITY",
    "DEFAULT_SPIKE_DENSITY",
    "ENGINES",
    "PHASES",
    "ActionContext",
    "Activity",
    "ActivityBuilder",
    "ActivityError",
    "CountProvider",
    "ElementwiseWork",
    "LutWork",
    "MacWork",
    "StatisticalProvider",
    "TaskActivity",
    "TraceProvider",
    "Work",
    "activity_from_densities",
    "activity_from_trace",
    "apply_table_policy",
    "default_densities",
    "dense_forward_counts",
    "dense_forward_work",
    "dense_task",
    "dense_update_counts",
    "dense_update_work",
    "densities_from_trace",
    "engine_for",
    "expected_backward",
    "expected_busiest_mac_unit",
    "expected_forward",
    "expected_max",
    "expected_update",
    "kind_of",
    "layer_major",
    "mac_unit_of",
    "micro_batches",
    "parameter_count",
    "replicas",
    "resolve_densities",
    "task_actions",
    "update_block_groups",
]


def __getattr__(name: str):
    """``ActionContext`` and ``task_actions`` moved to :mod:`h2learn.arch.actions`.

    They are re-exported lazily: :mod:`h2learn.arch.actions` imports this
    package's task records, so an eager import here would be circular.
    """
    if name in ("ActionContext", "task_actions"):
        from h2learn.arch import actions

        return getattr(actions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
