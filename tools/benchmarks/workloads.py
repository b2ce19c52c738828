"""What the benchmarks run on: the embedded default task (``digits``: scikit-learn's 8x8 digits, the impaired CNN
host, 3 slots, 60-epoch episodes), models with a seed walked to a given stage through kasmina's public API, and
real observations collected from host-training envs."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmarks.timing import Case, Work
from esper.app.tasks import CNNTaskHost, TaskPreset, get_task
from esper.kasmina import GateConfig, MorphogeneticModel, RowKind
from esper.leyline import (
    TEMPO_EPOCHS,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    EnvObservation,
    EsperError,
    FactoredAction,
    SeedStage,
    Tempo,
)
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.model_factories import CNNModelFactory, ModelFactory
from esper.simic.envs.task_data import TaskData
from esper.tamiyo import RandomValidController

DIGITS: TaskPreset = get_task("digits")

#: Gate thresholds only decide when a seed may advance. A one-epoch TRAINING dwell lets the driver below reach
#: FOSSILIZED in a few ticks; it changes nothing that the forward, backward or validation costs.
BENCH_GATES = GateConfig(min_training_epochs=1)
#: The seed the host-overhead and counterfactual benchmarks grow: the first blueprint the heuristic tries.
BENCH_BLUEPRINT = Blueprint.CONV_LIGHT


@functools.cache
def digits_task() -> TaskData:
    """Loaded once per process (the same tensors for every benchmark)."""
    return DIGITS.load_data(None).task


def digits_host() -> CNNTaskHost:
    """The digits preset's CNN host."""
    host = DIGITS.host
    if not isinstance(host, CNNTaskHost):
        raise BenchError(f"the digits preset's host is {host.describe()}, not a CNN")
    return host


def digits_env_config(device: torch.device) -> EnvConfig:
    """The digits preset's env settings on ``device``."""
    return dataclasses.replace(DIGITS.env, device=str(device))


def digits_factory() -> CNNModelFactory:
    """The model factory ``esper train`` uses for the digits task."""
    return digits_host().factory(DIGITS.slots, DIGITS.gates.gate_config(DIGITS.episode_epochs))


def running_env_case(
    name: str, task: TaskData, factory: ModelFactory, config: EnvConfig, seed: int
) -> tuple[Case, Work]:
    """A timed case stepping a running env with WAIT; an episode that ends (after ``max_epochs`` or a rollback)
    restarts outside the clock. Also returns the bare step."""
    env = HostTrainingEnv(task, factory, config)
    env.reset(seed)
    wait = FactoredAction.wait()

    def step() -> object:
        return env.step(wait)

    def prepare() -> Work:
        if env.done:
            env.reset(seed)
        return step

    return Case(name, prepare), step


class BenchError(EsperError):
    """A benchmark could not set up its workload."""


def _require(success: bool, reason: str) -> None:
    if not success:
        raise BenchError(f"lifecycle driver refused: {reason}")


def grow_seed(model: MorphogeneticModel, slot: int, stage: SeedStage, generator: torch.Generator) -> None:
    """Germinate ``BENCH_BLUEPRINT`` in ``slot`` and walk it to ``stage`` (TRAINING, BLENDING with alpha > 0, or
    FOSSILIZED) with public calls: one backward with gradient observation for the BLENDING gate's gradient
    check, ticks for dwell and ramp, and a recorded counterfactual (the seed worth 10 points) for FOSSILIZE.
    Needs a CPU digits model built with ``BENCH_GATES`` (one TRAINING epoch)."""
    if stage not in (SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.FOSSILIZED):
        raise BenchError(f"grow_seed drives seeds to TRAINING, BLENDING or FOSSILIZED, not {stage.name}")
    germinate = FactoredAction.germinate(slot, BENCH_BLUEPRINT, BlendStyle.LINEAR_ADD, Tempo.FAST, AlphaTarget.FULL)
    for action in (germinate, FactoredAction.advance(slot)):
        result = model.execute(action, 10.0)
        _require(result.success, result.reason)
    if stage is SeedStage.TRAINING:
        return
    host = digits_host()
    inputs = torch.randn(host.example_input(16).shape, generator=generator)
    targets = torch.randint(0, host.config.num_classes, (16,), generator=generator)
    for _ in range(model.gate_config.min_training_epochs):
        model.zero_grad(set_to_none=True)
        torch.autograd.backward(F.cross_entropy(model(inputs), targets))
        model.observe_seed_gradients()
        model.tick()
    result = model.execute(FactoredAction.advance(slot), 11.0)
    _require(result.success, result.reason)
    model.tick()  # one ramp step: alpha > 0, so the seed affects the output
    if stage is SeedStage.BLENDING:
        return
    for _ in range(TEMPO_EPOCHS[Tempo.FAST] - 1):
        model.tick()
    result = model.execute(FactoredAction.advance(slot), 12.0)
    _require(result.success, result.reason)
    plan = model.counterfactual_plan()
    accuracies = [50.0] + [40.0 if row.kind is RowKind.ALPHA_ZERO else 60.0 for row in plan.rows[1:]]
    model.record_counterfactuals(plan, accuracies)
    result = model.execute(FactoredAction.fossilize(slot), 13.0)
    _require(result.success, result.reason)


@dataclass(frozen=True)
class StagedModelFactory:
    """The digits model (same host and init as ``digits_factory``) with seeds grown to the given stages, as
    ``(slot index, stage)`` pairs in growing order."""

    seeds: tuple[tuple[int, SeedStage], ...]

    def __call__(self, seed: int) -> MorphogeneticModel:
        base = digits_factory()
        model = CNNModelFactory(base.host, base.image_size, base.slot_config, BENCH_GATES)(seed)
        generator = torch.Generator().manual_seed(seed)
        for slot, stage in self.seeds:
            grow_seed(model, slot, stage, generator)
        return model


def collect_observations(n_envs: int, epochs: int, seed: int) -> list[EnvObservation]:
    """Real observations: ``n_envs`` digits envs driven by the random-valid controller for ``epochs`` epochs
    (germinations, advances, prunes...: a mix of stages), every observation including the resets'."""
    task = digits_task()
    config = digits_env_config(torch.device("cpu"))
    envs = [HostTrainingEnv(task, digits_factory(), config) for _ in range(n_envs)]
    controller = RandomValidController(DIGITS.slots, seed=seed)
    controller.start_episodes(n_envs)
    current = {index: env.reset(seed + index) for index, env in enumerate(envs)}
    collected = list(current.values())
    active = list(current)
    for _ in range(epochs):
        if not active:
            break
        actions = controller.act(active, [current[index] for index in active])
        results = {index: envs[index].step(action) for index, action in zip(active, actions, strict=True)}
        for index, result in results.items():
            current[index] = result.observation
            collected.append(result.observation)
        active = [index for index in active if not results[index].terminal]
    return collected
