"""Generalized advantage estimation over [env, time] with true terminals (the fixed horizon is terminal)."""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminals: torch.Tensor,
    valid: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, both ``[env, time]``; zero on padding.

    ``values`` are in reward units (denormalized). A terminal step bootstraps nothing; steps after it are
    padding (``valid`` False). Every sequence in a round ends terminal, so no bootstrap value is needed.
    """
    if not (rewards.shape == values.shape == terminals.shape == valid.shape) or rewards.dim() != 2:
        raise ValueError(
            f"rewards, values, terminals and valid must share one [env, time] shape; got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(terminals.shape)}, {tuple(valid.shape)}"
        )
    n_envs, horizon = rewards.shape
    continues = (~terminals).to(rewards.dtype)
    # The TD errors need no recurrence: computed for every step at once, only the discounted sum is a loop.
    next_values = torch.zeros_like(values)
    next_values[:, :-1] = torch.where(valid[:, 1:], values[:, 1:], torch.zeros_like(values[:, 1:]))
    deltas = rewards + gamma * next_values * continues - values
    decays = gamma * gae_lambda * continues
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(n_envs, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(horizon)):
        running = torch.where(valid[:, t], deltas[:, t] + decays[:, t] * running, torch.zeros_like(running))
        advantages[:, t] = running
    returns = torch.where(valid, advantages + values, torch.zeros_like(values))
    return advantages, returns
