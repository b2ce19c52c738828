"""Planted failures: the governor rolls the env back, prunes live seeds, keeps fossils, ends the episode."""

from __future__ import annotations

import math

import pytest
import torch
from _simic_fixtures import grow_first_slot, stripes_factory, stripes_task

from esper.leyline import Blueprint, FactoredAction, SeedStage
from esper.simic.env import HostTrainingEnv
from esper.simic.env_config import EnvConfig
from esper.simic.rewards import RewardConfig

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


def _assert_rolled_back(env: HostTrainingEnv, result_reward: float, fossil_state: dict[str, torch.Tensor]) -> None:
    model = env.model
    assert model.stages()[0] is SeedStage.FOSSILIZED  # fossils are kept
    assert model.stages()[1] in (SeedStage.EMBARGOED, SeedStage.PRUNED)  # the live seed was pruned
    assert result_reward == pytest.approx(-0.7)
    assert env.done
    summary = env.summary()
    assert summary.rolled_back and summary.rollback_reason is not None
    assert summary.epochs_run < CONFIG.max_epochs
    restored = dict(model.slot("r0c0").state_dict())
    assert all(torch.isfinite(v).all() for v in restored.values() if v.is_floating_point())
    assert all(torch.isfinite(p).all() for p in model.host_parameters())
    # the optimizers were rebuilt: no momentum survives the rollback
    assert all(not opt.state for opt in [env._host_optimizer, *(o for _, o in env._seed_optimizers.values())])
    assert set(restored) == set(fossil_state)


def test_planted_nan_rolls_back() -> None:
    env = _env_with_fossil_and_live_seed()
    fossil_state = dict(env.model.slot("r0c0").state_dict())
    with torch.no_grad():
        next(env.model.host_parameters()).fill_(math.nan)
    result = env.step(FactoredAction.wait())
    assert result.rolled_back and result.terminal
    assert "non_finite_loss" in (env.summary().rollback_reason or "")
    _assert_rolled_back(env, result.reward, fossil_state)


def test_planted_divergence_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_with_fossil_and_live_seed()
    fossil_state = dict(env.model.slot("r0c0").state_dict())
    honest_validate = env._validate

    def diverging_validate() -> tuple[float, float]:
        loss, accuracy = honest_validate()
        return loss * 2.0 + 0.3, accuracy  # far above the recent losses but below random guessing (ln 2)

    monkeypatch.setattr(env, "_validate", diverging_validate)
    results = [env.step(FactoredAction.wait()) for _ in range(3)]
    assert [r.rolled_back for r in results] == [False, False, True]
    assert "divergence" in (env.summary().rollback_reason or "")
    _assert_rolled_back(env, results[-1].reward, fossil_state)
