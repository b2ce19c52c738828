"""Behaviour cloning: a warm start that teaches the policy a demonstrator's actions before PPO takes over.

PPO from a uniform policy spends most of a small budget finding what a simple schedule already knows (germinate,
then advance every seed through its gates). Cloning first puts the policy where that schedule is, and PPO then
only has to find what beats it. The clone trains the same bundle with the same optimizer and return normalizer
the PPO update uses, on a buffer of demonstrated episodes (``demonstrations``):

- the policy term is the negative log-likelihood of the demonstrated action, summed over the heads that had a
  choice (the joint action's log-probability), averaged over valid steps;
- the value term regresses V(s) onto the demonstrator's discounted Monte-Carlo returns in the normalizer's units,
  so PPO's first advantages come from a critic that has already seen this kind of episode;
- it stops once the demonstrated actions have, on average, ``target_probability`` under the policy: a clone
  that is sure but not certain still samples other actions, which is what PPO learns from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from esper.leyline import ConfigError, EvalResult, NonFiniteError
from esper.simic.ppo.advantages import compute_gae
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.ppo.updater import PPOUpdater


@dataclass(frozen=True)
class CloningConfig:
    """``max_epochs`` passes over the demonstrations at most, ``minibatch_envs`` episodes per step; stop when
    the mean probability of the demonstrated actions reaches ``target_probability``."""

    max_epochs: int = 50
    minibatch_envs: int = 8
    target_probability: float = 0.9

    def __post_init__(self) -> None:
        for name in ("max_epochs", "minibatch_envs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"warm_start.{name} must be an integer >= 1, got {value!r}")
        if not 0.0 < self.target_probability <= 1.0:
            raise ConfigError(f"warm_start.target_probability must be in (0, 1], got {self.target_probability}")


@dataclass(frozen=True)
class CloningStats:
    epochs: int
    steps: int
    transitions: int
    #: Mean probability of the demonstrated joint action over valid steps: before the first and after the last
    #: epoch (the second is measured during that epoch, as the minibatches were scored).
    initial_action_probability: float
    final_action_probability: float
    final_policy_loss: float
    final_value_loss: float


def clone(
    updater: PPOUpdater, buffer: RolloutBuffer, config: CloningConfig, generator: torch.Generator
) -> CloningStats:
    """Fit ``updater.bundle`` to the demonstrated actions and returns in ``buffer`` (see the module docstring)."""
    buffer.check_complete()
    ppo = updater.config
    valid = buffer.valid
    _, returns = compute_gae(buffer.rewards, torch.zeros_like(buffer.rewards), buffer.terminals, valid, ppo.gamma, 1.0)
    updater.returns.update(returns[valid])
    value_targets = updater.returns.normalize(returns)
    # The clone sees the inputs normalized as PPO's first round will (PPO folds each round in after its update).
    updater.bundle.update_normalizer(buffer.valid_inputs())
    # [env, time, heads]: the head mattered for the demonstrated op and had more than one allowed action.
    choices = buffer.relevant & valid.unsqueeze(-1) & (buffer.masks.sum(dim=-1) > 1)
    n_valid = int(valid.sum())
    initial = _mean_probability(updater, buffer, choices)

    epochs = steps = 0
    probability = initial
    policy_loss = value_loss = math.nan
    while epochs < config.max_epochs and probability < config.target_probability:
        order = torch.randperm(buffer.n_envs, generator=generator)
        joint_sum = 0.0
        for start in range(0, buffer.n_envs, config.minibatch_envs):
            rows = order[start : start + config.minibatch_envs]
            evaluated = updater.evaluate_rows(buffer, rows)
            device = updater.bundle.device
            choice = choices[rows].to(device)
            row_valid = valid[rows].to(device)
            count = row_valid.sum().clamp(min=1)
            joint = _joint_log_prob(evaluated, choice)
            pg = -(joint * row_valid).sum() / count
            vf = 0.5 * (((evaluated.values.float() - value_targets[rows].to(device)) ** 2) * row_valid).sum() / count
            loss = pg + ppo.value_coef * vf
            if not math.isfinite(float(loss.detach())):
                raise NonFiniteError("behaviour cloning produced a NaN or infinite loss; no step was taken")
            updater.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(updater.params, ppo.max_grad_norm)
            updater.optimizer.step()
            joint_sum += float((joint.detach().exp() * row_valid).sum())
            policy_loss, value_loss = float(pg.detach()), float(vf.detach())
            steps += 1
        probability = joint_sum / max(n_valid, 1)
        epochs += 1
    return CloningStats(epochs, steps, n_valid, initial, probability, policy_loss, value_loss)


@torch.no_grad()
def _mean_probability(updater: PPOUpdater, buffer: RolloutBuffer, choices: torch.Tensor) -> float:
    rows = torch.arange(buffer.n_envs)
    evaluated = updater.evaluate_rows(buffer, rows)
    device = updater.bundle.device
    joint = _joint_log_prob(evaluated, choices.to(device))
    valid = buffer.valid.to(device)
    return float((joint.exp() * valid).sum() / valid.sum().clamp(min=1))


def _joint_log_prob(evaluated: EvalResult, choice: torch.Tensor) -> torch.Tensor:
    """``[env, time]`` log-probability of the stored joint action: the sum over the heads that had a choice."""
    return (evaluated.log_probs.float() * choice).sum(dim=-1)
