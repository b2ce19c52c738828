"""Planted failures: the governor rolls the env back to its snapshot (live seeds and fossils included), the
restored model is validated again and reported, and the episode ends."""

from __future__ import annotations

import math

import pytest
import torch
from _simic_fixtures import grow_first_slot, stripes_factory, stripes_task

from esper.leyline import AlphaSpeed, Blueprint, FactoredAction, SeedStage, Tempo
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import StepResult
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.rewards import RewardConfig

CONFIG = EnvConfig(max_epochs=30, batch_size=32, host_lr=0.05, seed_lr=0.05, reward=RewardConfig(rollback_penalty=0.7))


def _env_with_fossil_and_live_seed(seed: int = 1) -> HostTrainingEnv:
    """Slot r0c0 fossilized by the scripted grower, then a live seed germinated in r0c1."""
    env = HostTrainingEnv(stripes_task(), stripes_factory(), CONFIG)
    obs = env.reset(seed)
    while obs.slots[0].stage is not SeedStage.FOSSILIZED:
        obs = env.step(grow_first_slot(obs)).observation
    for _ in range(6):  # healthy epochs so the governor snapshots the fossil
        obs = env.step(FactoredAction.wait()).observation
    obs = env.step(FactoredAction.germinate(1, Blueprint.NORM)).observation
    obs = env.step(FactoredAction.advance(1)).observation
    assert obs.slots[1].stage is SeedStage.TRAINING
    return env


def _assert_rolled_back(env: HostTrainingEnv, result: StepResult, stages_at_snapshot: list[SeedStage]) -> None:
    model = env.model
    assert model.stages()[0] is SeedStage.FOSSILIZED  # the fossil was in the snapshot
    assert list(model.stages()) == stages_at_snapshot  # the model is the snapshotted one, live seeds included
    assert env.done
    summary = env.summary()
    assert summary.rolled_back and summary.rollback_reason is not None
    assert summary.epochs_run < CONFIG.max_epochs
    assert all(torch.isfinite(p).all() for p in model.parameters())
    _assert_reports_the_restored_model(env, result)
    # the optimizers were rebuilt: no momentum survives the rollback
    assert all(not opt.state for opt in [env._host_optimizer, *(o for _, o in env._seed_optimizers.values())])


def _assert_reports_the_restored_model(env: HostTrainingEnv, result: StepResult) -> None:
    """The restored model was validated again; it is as good as at the snapshot, and the episode reports it."""
    governor = env._governor
    assert governor is not None
    summary = env.summary()
    at_snapshot = summary.val_accuracy_curve[governor.snapshot_epoch]
    _, revalidated = env._validate()
    assert revalidated == result.observation.val_accuracy == summary.final_val_accuracy
    assert summary.val_accuracy_curve[-1] == summary.final_val_accuracy
    assert revalidated >= at_snapshot
    gain = result.reward_terms.accuracy_gain
    assert result.reward == pytest.approx(gain - 0.7)
    # the accuracy terms still telescope to what the episode gained
    assert gain == pytest.approx((summary.final_val_accuracy - summary.val_accuracy_curve[-2]) / 100)


def _stages_at_next_rollback(env: HostTrainingEnv) -> list[SeedStage]:
    """The stages the model had when the governor took its current snapshot (read from the snapshot itself)."""
    governor = env._governor
    assert governor is not None
    slots = governor._snapshot.state["slots"]
    assert isinstance(slots, list)
    return [SeedStage(slot["stage"]) for slot in slots]


def test_planted_nan_rolls_back() -> None:
    env = _env_with_fossil_and_live_seed()
    stages = _stages_at_next_rollback(env)
    with torch.no_grad():
        next(env.model.host_parameters()).fill_(math.nan)
    result = env.step(FactoredAction.wait())
    assert result.rolled_back and result.terminal
    assert "non_finite_loss" in (env.summary().rollback_reason or "")
    _assert_rolled_back(env, result, stages)


def test_planted_divergence_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_with_fossil_and_live_seed()
    honest_validate = env._validate

    def diverging_validate() -> tuple[float, float]:
        loss, accuracy = honest_validate()
        return loss * 2.0 + 0.3, accuracy  # far above the recent losses but below random guessing (ln 2)

    monkeypatch.setattr(env, "_validate", diverging_validate)
    stages = _stages_at_next_rollback(env)
    results = [env.step(FactoredAction.wait()) for _ in range(3)]
    assert [r.rolled_back for r in results] == [False, False, True]
    assert "divergence" in (env.summary().rollback_reason or "")
    monkeypatch.setattr(env, "_validate", honest_validate)
    _assert_rolled_back(env, results[-1], stages)


def test_pruning_a_seed_that_carries_the_host_rolls_back_to_a_model_that_works() -> None:
    """A conv_light seed in HOLDING solves stripes for the 1x1 host; an instant prune collapses the model to
    random guessing. The rollback must bring back the model of the snapshot (seed included), validated again,
    and the episode must report it, not the collapsed one."""
    env = HostTrainingEnv(stripes_task(), stripes_factory(), CONFIG)
    obs = env.reset(1)
    obs = env.step(FactoredAction.germinate(0, Blueprint.CONV_LIGHT, tempo=Tempo.FAST)).observation
    while obs.slots[0].stage is not SeedStage.HOLDING:
        obs = env.step(FactoredAction.advance(0)).observation
    for _ in range(6):  # healthy epochs: the governor snapshots the model with the HOLDING seed in it
        obs = env.step(FactoredAction.wait()).observation
    assert _stages_at_next_rollback(env)[0] is SeedStage.HOLDING
    assert obs.val_accuracy > 90.0  # the seed carries the host
    result = env.step(FactoredAction.prune(0, AlphaSpeed.INSTANT))
    assert result.action_success and result.rolled_back and result.terminal
    assert "collapse" in (env.summary().rollback_reason or "")
    assert env.model.stages()[0] is SeedStage.HOLDING  # the carrying seed is back
    _assert_reports_the_restored_model(env, result)
    assert env.summary().final_val_accuracy > 90.0
