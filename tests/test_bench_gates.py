"""The load-independent CI gates of tools/bench catch planted regressions and pass without them: an extra
validation pass per epoch (host forwards per env step, on the CNN and the transformer host) and the act path's
work done three times (torch operators and Python calls per act call). Also the counters themselves. Counts
only, no clocks: these cannot flake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from benchmarks import act_latency, act_parts, host_overhead, transformer_overhead
from benchmarks.counting import module_calls, python_calls, torch_operators
from benchmarks.report import BenchmarkResult, BenchReport, Metric
from benchmarks.timing import Case
from benchmarks.workloads import DIGITS, digits_env_config, digits_task

import esper.tamiyo.policy.lstm_bundle as bundle_module
from esper.leyline import EnvObservation
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.tamiyo import LSTMPolicyBundle, create_policy, register_builtin_policies


def _gate(metrics: tuple[Metric, ...]) -> list[str]:
    """What ``tools/bench --quick`` would report as regressions for these metrics."""
    result = BenchmarkResult("gate", "gate", "", metrics, (), {})
    return [metric.key for metric in BenchReport("test", {}, (result,)).regressions()]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_counters_count_what_the_work_does() -> None:
    x = torch.ones(4)

    def once() -> object:
        return torch.mul(x, 2.0)

    def thrice() -> object:
        return [once() for _ in range(3)]

    assert torch_operators(thrice, calls=2) == 3 * torch_operators(once, calls=2) > 0

    def inner() -> None:
        return None

    def outer() -> None:
        inner()
        inner()

    assert python_calls(outer, calls=4) == 3.0  # outer and two inner calls per execution
    layer = torch.nn.Linear(3, 2)
    with module_calls(layer) as sizes:
        layer(torch.zeros(5, 3))
        layer(torch.zeros(7, 3))
    layer(torch.zeros(1, 3))  # the hook is gone after the block
    assert sizes == [5, 7]


@pytest.mark.slow
def test_host_gate_catches_an_extra_validation_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    task, config = digits_task(), digits_env_config(torch.device("cpu"))
    clean, _ = host_overhead.count_work(task, config)
    assert _gate(clean) == []
    validate: Callable[[HostTrainingEnv], tuple[float, float]] = HostTrainingEnv._validate

    def validate_twice(env: HostTrainingEnv) -> tuple[float, float]:
        validate(env)
        return validate(env)

    monkeypatch.setattr(HostTrainingEnv, "_validate", validate_twice)
    planted, _ = host_overhead.count_work(task, config)
    assert _gate(planted) == ["host_overhead.forwards_per_step"]


@pytest.mark.slow
def test_transformer_host_gate_catches_an_extra_validation_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    task = transformer_overhead._task()
    config = transformer_overhead._env_config(torch.device("cpu"))
    assert _gate((transformer_overhead.count_forwards(task, config),)) == []
    validate: Callable[[HostTrainingEnv], tuple[float, float]] = HostTrainingEnv._validate

    def validate_twice(env: HostTrainingEnv) -> tuple[float, float]:
        validate(env)
        return validate(env)

    monkeypatch.setattr(HostTrainingEnv, "_validate", validate_twice)
    planted = transformer_overhead.count_forwards(task, config)
    assert _gate((planted,)) == ["transformer_overhead.forwards_per_step"]


@pytest.fixture(scope="module")
def observations() -> list[EnvObservation]:
    return act_latency.counting_observations()


def _bundle() -> LSTMPolicyBundle:
    register_builtin_policies()
    bundle = create_policy("lstm", DIGITS.slots, device="cpu")
    assert isinstance(bundle, LSTMPolicyBundle)
    return bundle


@pytest.mark.slow
def test_act_gate_passes_on_the_committed_baselines(observations: list[EnvObservation]) -> None:
    metrics = act_latency.count_work(_bundle(), observations)
    assert _gate(metrics) == []
    # The baselines are today's counts, not a loose guess: a 3x regression cannot hide under the margin.
    assert all(0.8 <= metric.value <= 1.2 for metric in metrics)


@pytest.mark.slow
def test_act_gate_catches_the_act_path_done_three_times(
    monkeypatch: pytest.MonkeyPatch, observations: list[EnvObservation]
) -> None:
    encode = LSTMPolicyBundle.encode
    get_action = LSTMPolicyBundle.get_action

    def encode_thrice(self: LSTMPolicyBundle, *args: Any) -> Any:
        encode(self, *args)
        encode(self, *args)
        return encode(self, *args)

    def act_thrice(self: LSTMPolicyBundle, *args: Any) -> Any:
        get_action(self, *args)
        get_action(self, *args)
        return get_action(self, *args)

    monkeypatch.setattr(LSTMPolicyBundle, "encode", encode_thrice)
    monkeypatch.setattr(LSTMPolicyBundle, "get_action", act_thrice)
    metrics = act_latency.count_work(_bundle(), observations)
    assert _gate(metrics) == ["act_latency.torch_ops", "act_latency.python_calls"]


@pytest.mark.slow
def test_act_parts_replace_one_part_per_call_and_restore_it(observations: list[EnvObservation]) -> None:
    bundle = _bundle()
    originals = {name: getattr(bundle_module, name) for name in act_parts.PARTS}
    cases = {case.name: case.prepare for case in act_parts.part_cases(bundle, observations[:8], Case.of)}
    assert list(cases) == [act_parts.replaced(name, 8) for name in ("", *act_parts.PARTS, "all")]
    counted = {}
    for name, prepare in cases.items():
        counted[name] = torch_operators(prepare())
        # Each replacement lasts one call: the bundle calls its real functions again right after.
        assert {part: getattr(bundle_module, part) for part in act_parts.PARTS} == originals
    whole = counted[act_parts.replaced("", 8)]
    # A replaced part does none of its work: sampling is most of the torch operators outside the network, the
    # numpy-only parts (reading, features, masks) drop the few tensors they wrap.
    assert counted[act_parts.replaced("sample_actions", 8)] < whole - 10
    assert counted[act_parts.replaced("all", 8)] < counted[act_parts.replaced("sample_actions", 8)]
    assert counted[act_parts.replaced("read_columns", 8)] <= whole
