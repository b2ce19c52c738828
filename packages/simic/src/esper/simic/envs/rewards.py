"""The reward of one RL step (one host epoch after an action).

Default: accuracy gained this epoch (as a fraction) minus a rent on the parameters of seeds that affect the
output. Summed over an episode the accuracy terms telescope to "final minus initial accuracy", so the return
rewards what users want. Other terms exist only as named options, each off by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from esper.leyline import ConfigError


@dataclass(frozen=True)
class RewardConfig:
    #: Rent per epoch = rent_weight * active seed params / host params: every parameter that changes the output
    #: costs the same each epoch, measured in host sizes so the weight means the same on any host. At 0.001 a
    #: seed as large as the host must buy 0.1 accuracy points per epoch to pay for itself (at 0.002 the digits
    #: policy learned to grow nothing: the average random seed cost more than it earned before PPO could
    #: learn which seeds pay).
    rent_weight: float = 0.001
    #: Reward of the terminal step when the governor rolls the episode back (negated).
    rollback_penalty: float = 0.5
    #: Named option: extra penalty when the chosen action could not be executed (gate refused, slot busy).
    invalid_action_penalty: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rent_weight", "rollback_penalty", "invalid_action_penalty"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"reward.{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class RewardTerms:
    """The parts of one step's reward, kept for logs and ablations."""

    accuracy_gain: float
    rent: float
    invalid_action: float
    rollback: float

    @property
    def total(self) -> float:
        return self.accuracy_gain - self.rent - self.invalid_action - self.rollback


def parameter_rent(config: RewardConfig, active_seed_params: int, host_params: int) -> float:
    if host_params <= 0:
        raise ConfigError(f"host parameter count must be > 0, got {host_params}")
    return config.rent_weight * active_seed_params / host_params


def step_reward(
    config: RewardConfig,
    accuracy_before: float,
    accuracy_after: float,
    active_seed_params: int,
    host_params: int,
    action_succeeded: bool,
) -> RewardTerms:
    """Reward of a normal step; accuracies are in percent."""
    return RewardTerms(
        accuracy_gain=(accuracy_after - accuracy_before) / 100.0,
        rent=parameter_rent(config, active_seed_params, host_params),
        invalid_action=0.0 if action_succeeded else config.invalid_action_penalty,
        rollback=0.0,
    )


def rollback_reward(config: RewardConfig, accuracy_before: float, restored_accuracy: float) -> RewardTerms:
    """Reward of the terminal step of an episode the governor rolled back: the penalty, and the accuracy gained
    from the step's start to the restored model (so the accuracy terms still telescope to final minus initial)."""
    return RewardTerms(
        accuracy_gain=(restored_accuracy - accuracy_before) / 100.0,
        rent=0.0,
        invalid_action=0.0,
        rollback=config.rollback_penalty,
    )
