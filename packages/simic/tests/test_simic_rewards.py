"""The reward: accuracy gained minus seed rent by default; each named option changes exactly its term."""

from __future__ import annotations

import pytest

from esper.leyline import ConfigError
from esper.simic.envs.rewards import RewardConfig, parameter_rent, rollback_reward, step_reward


def test_default_reward_is_accuracy_gain_minus_linear_rent() -> None:
    config = RewardConfig()
    terms = step_reward(config, 20.0, 23.5, active_seed_params=150, host_params=75, action_succeeded=True)
    assert terms.accuracy_gain == pytest.approx(0.035)
    assert terms.rent == pytest.approx(config.rent_weight * 2.0)
    assert terms.invalid_action == 0.0 and terms.rollback == 0.0
    assert terms.total == pytest.approx(0.035 - config.rent_weight * 2.0)


def test_rent_is_linear_in_parameters_and_zero_without_active_seeds() -> None:
    config = RewardConfig(rent_weight=0.01)
    assert parameter_rent(config, 0, 75) == 0.0
    assert parameter_rent(config, 300, 75) == pytest.approx(2 * parameter_rent(config, 150, 75))
    assert parameter_rent(RewardConfig(rent_weight=0.0), 10_000, 75) == 0.0
    with pytest.raises(ConfigError, match="host parameter count"):
        parameter_rent(config, 10, 0)


def test_invalid_action_penalty_is_off_by_default_and_applies_only_to_failures() -> None:
    assert step_reward(RewardConfig(), 10, 10, 0, 75, action_succeeded=False).total == 0.0
    penalized = RewardConfig(invalid_action_penalty=0.05)
    assert step_reward(penalized, 10, 10, 0, 75, action_succeeded=False).total == pytest.approx(-0.05)
    assert step_reward(penalized, 10, 10, 0, 75, action_succeeded=True).total == 0.0


def test_rollback_reward_is_the_penalty_plus_the_gain_up_to_the_restored_model() -> None:
    terms = rollback_reward(RewardConfig(rollback_penalty=0.8), 40.0, 40.0)
    assert terms.total == pytest.approx(-0.8)
    assert terms.accuracy_gain == 0.0 and terms.rent == 0.0
    worse = rollback_reward(RewardConfig(rollback_penalty=0.8), 40.0, 30.0)
    assert worse.accuracy_gain == pytest.approx(-0.1)
    assert worse.total == pytest.approx(-0.9)


@pytest.mark.parametrize("field", ["rent_weight", "rollback_penalty", "invalid_action_penalty"])
def test_negative_or_non_finite_weights_are_rejected(field: str) -> None:
    with pytest.raises(ConfigError, match=f"reward.{field}"):
        RewardConfig(**{field: -1.0})
    with pytest.raises(ConfigError, match=f"reward.{field}"):
        RewardConfig(**{field: float("nan")})
