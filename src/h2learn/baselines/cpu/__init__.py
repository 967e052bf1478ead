"""The GPU model's method validated on this CPU (see docs/cpu-validation.md).

The V100 model (:mod:`h2learn.baselines.gpu`) cannot be checked on a machine
without a V100, but its *method* -- the kernel list of h2learn's step priced
with a roofline plus launch overhead -- can be checked on any machine whose
rates are measured.  This package measures the CPU's rates
(:mod:`.rates`), predicts h2learn's training step with the GPU model's own
kernel list and cost function, times the real step per layer
(:mod:`.step_timer`) and compares (:mod:`.compare`, :mod:`.validate`)::

    from h2learn.baselines.cpu import validate_cpu_model

    result = validate_cpu_model("cifar-vgg", batch_size=2, time_steps=2, steps=8)
    result.total_error, result.dominant_error
    print(result.table())
    result.to_dict()
"""

from h2learn.baselines.cpu.compare import LayerComparison, compare_layers, layer_groups
from h2learn.baselines.cpu.rates import (
    MachineRates,
    RateProbe,
    cpu_device_spec,
    measure_rates,
)
from h2learn.baselines.cpu.validate import (
    CPUValidation,
    CPUValidationError,
    cpu_step_implementation,
    predict_step,
    validate_cpu_model,
)

__all__ = [
    "CPUValidation",
    "CPUValidationError",
    "LayerComparison",
    "MachineRates",
    "RateProbe",
    "compare_layers",
    "cpu_device_spec",
    "cpu_step_implementation",
    "layer_groups",
    "measure_rates",
    "predict_step",
    "validate_cpu_model",
]
