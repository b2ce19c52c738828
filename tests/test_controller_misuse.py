"""Every controller refuses the same misuse with the same named error and the same message.

Tamiyo's rules and simic's policy controller share leyline's ``EpisodeEnvs``, so acting before
``start_episodes``, starting zero envs, or passing env ids that do not match the observations or the started
envs is refused alike, whichever controller a run uses.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from esper.kasmina import CNNHostConfig, GateConfig, MorphogeneticModel
from esper.leyline import (
    Blueprint,
    ConfigError,
    Controller,
    EnvObservation,
    EsperError,
    InvalidStateMachineError,
    SlotConfig,
    Topology,
)
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import (
    HeuristicController,
    RandomValidController,
    ScheduleController,
    StaticController,
    create_policy,
    register_builtin_policies,
)


def _model() -> MorphogeneticModel:
    config = CNNHostConfig.preset("digits_impaired")
    return MorphogeneticModel.from_cnn_config(config, seed=0, image_size=8, gate_config=GateConfig(1, 0.0))


def _observation(model: MorphogeneticModel) -> EnvObservation:
    return EnvObservation(
        epoch=1, max_epochs=60, val_loss=1.0, val_accuracy=50.0, slots=model.slot_reports(), germinations_remaining=3
    )


def _policy(slots: SlotConfig) -> Controller:
    register_builtin_policies()
    return PolicyController(create_policy("lstm", slots), generator=torch.Generator().manual_seed(0))


CONTROLLERS: dict[str, Callable[[SlotConfig], Controller]] = {
    "heuristic": lambda slots: HeuristicController(slots, Topology.CNN),
    "schedule": lambda slots: ScheduleController(slots, Topology.CNN, Blueprint.CONV_LIGHT),
    "policy": _policy,
    "random": lambda slots: RandomValidController(slots, Topology.CNN, seed=0),
    "static": lambda slots: StaticController(),
}


@pytest.mark.parametrize("kind", sorted(CONTROLLERS))
@pytest.mark.parametrize(
    ("misuse", "error", "message"),
    [
        ("act before start", InvalidStateMachineError, "{name}: act() called before start_episodes()"),
        ("start zero envs", ConfigError, "{name}: start_episodes needs n_envs >= 1, got 0"),
        ("ids and observations differ", ConfigError, "{name}: 2 env ids for 1 observations"),
        ("duplicate ids", ConfigError, "{name}: duplicate env ids [1, 1]"),
        ("unknown id", ConfigError, "{name}: env ids [2] outside the 2 envs of start_episodes()"),
    ],
)
def test_every_controller_refuses_the_same_misuse_alike(
    kind: str, misuse: str, error: type[EsperError], message: str
) -> None:
    model = _model()
    controller = CONTROLLERS[kind](model.slot_config)
    observation = _observation(model)
    with pytest.raises(error) as raised:
        if misuse == "act before start":
            controller.act([0], [observation])
        elif misuse == "start zero envs":
            controller.start_episodes(0)
        else:
            controller.start_episodes(2)
            env_ids = {"ids and observations differ": [0, 1], "duplicate ids": [1, 1], "unknown id": [2]}[misuse]
            observations = [observation] * (2 if misuse == "duplicate ids" else 1)
            controller.act(env_ids, observations)
    assert type(raised.value) is error
    assert str(raised.value) == message.format(name=controller.name)


@pytest.mark.parametrize("kind", sorted(CONTROLLERS))
def test_a_controller_acts_once_started(kind: str) -> None:
    """The refusals above are misuse only: the same controller, started, acts for known env ids."""
    model = _model()
    controller = CONTROLLERS[kind](model.slot_config)
    controller.start_episodes(2)
    actions = controller.act([1, 0], [_observation(model), _observation(model)])
    assert len(actions) == 2
