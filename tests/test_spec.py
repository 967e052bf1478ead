"""The network spec without run sizes, and the Workload that carries them."""

import dataclasses

import pytest

from h2learn.arch.simulate import SimulationError, simulate
from h2learn.baselines.gpu import GPUModelError, v100_training_step
from h2learn.spec import FC, NetworkSpec, SpecError, Workload, build_spec, expand

# The keys a spec's dict has always had in traces, checkpoints and export-spec files, in order.
STORED_KEYS = (
    "name",
    "input_shape",
    "num_classes",
    "layers",
    "time_steps",
    "batch_size",
    "lif",
    "input_kind",
)


def test_the_network_spec_has_no_run_sizes():
    names = {f.name for f in dataclasses.fields(NetworkSpec)}
    assert not names & {"time_steps", "batch_size"}
    workload = build_spec("cifar-vgg")
    assert isinstance(workload, Workload) and isinstance(workload.network, NetworkSpec)
    assert (workload.batch_size, workload.time_steps) == (16, 6)  # the zoo's default run
    assert not hasattr(workload.network, "time_steps")


def test_old_call_styles_return_a_workload_with_those_sizes():
    workload = build_spec("digits-mlp", batch_size=5, time_steps=3)
    assert (workload.batch_size, workload.time_steps) == (5, 3)
    assert workload.network == build_spec("digits-mlp").network
    small = expand("small", (64,), 10, [FC(10, fires=False)], time_steps=2, batch_size=7)
    assert small == Workload(small.network, batch_size=7, time_steps=2)
    # The network's fields read through the workload.
    assert small.layers == small.network.layers and small.name == "small"
    assert small.weighted_layers == small.network.weighted_layers


def test_resizing_and_changing_the_network():
    workload = build_spec("fmnist-conv")
    bigger = dataclasses.replace(workload, batch_size=128)
    assert bigger.network is workload.network and bigger.batch_size == 128
    colder = workload.with_network(lif=dataclasses.replace(workload.lif, v_th=0.5))
    assert colder.lif.v_th == 0.5 and colder.time_steps == workload.time_steps


def test_the_stored_dict_layout_is_unchanged_and_old_dicts_load():
    workload = build_spec("resnet", time_steps=3, batch_size=2)
    data = workload.to_dict()
    assert tuple(data) == STORED_KEYS  # unsorted writers (trace meta) give the same bytes
    assert Workload.from_dict(data) == workload
    assert Workload.from_json(workload.to_json()) == workload
    # A network read from a workload's (or an old spec's) dict drops the run sizes.
    assert NetworkSpec.from_dict(data) == workload.network
    assert set(workload.network.to_dict()) == set(STORED_KEYS) - {"time_steps", "batch_size"}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Workload(build_spec("digits-mlp").network, batch_size=0), "at least 1 sample"),
        (lambda: Workload(build_spec("digits-mlp").network, time_steps=0), "T must be"),
        (lambda: Workload("digits-mlp"), "needs a NetworkSpec"),  # type: ignore[arg-type]
        (lambda: Workload.from_dict(build_spec("digits-mlp").network.to_dict()), "malformed"),
    ],
)
def test_bad_workloads_give_one_line_errors(call, message):
    with pytest.raises(SpecError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_bare_network_is_refused_where_run_sizes_are_needed():
    network = build_spec("digits-mlp").network
    with pytest.raises(SimulationError, match="Workload"):
        simulate(network)
    with pytest.raises(GPUModelError, match="Workload"):
        v100_training_step(network)  # type: ignore[arg-type]
