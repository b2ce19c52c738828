"""GAE against a direct computation, with terminals and padding."""

from __future__ import annotations

import pytest
import torch

from esper.simic.ppo.advantages import compute_gae


def _reference(rewards: list[float], values: list[float], gamma: float, lam: float) -> list[float]:
    """Textbook GAE for one episode that ends terminal at its last step."""
    advantages = []
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages.append(running)
    return advantages[::-1]


def test_matches_reference_with_padding() -> None:
    rewards = torch.tensor([[1.0, 0.5, -0.2, 0.3], [0.1, 2.0, 0.0, 0.0]])
    values = torch.tensor([[0.2, 0.1, 0.4, 0.3], [0.5, 0.6, 9.0, 9.0]])
    terminals = torch.tensor([[False, False, False, True], [False, True, False, False]])
    valid = torch.tensor([[True, True, True, True], [True, True, False, False]])
    adv, ret = compute_gae(rewards, values, terminals, valid, gamma=0.9, gae_lambda=0.8)
    expected0 = _reference([1.0, 0.5, -0.2, 0.3], [0.2, 0.1, 0.4, 0.3], 0.9, 0.8)
    expected1 = _reference([0.1, 2.0], [0.5, 0.6], 0.9, 0.8)
    torch.testing.assert_close(adv[0], torch.tensor(expected0))
    torch.testing.assert_close(adv[1, :2], torch.tensor(expected1))
    assert adv[1, 2:].abs().sum() == 0  # padding after the terminal step, whatever its values say
    torch.testing.assert_close(ret[0], adv[0] + values[0])
    assert ret[1, 2:].abs().sum() == 0


def test_gamma_one_lambda_one_gives_reward_to_go() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.zeros(1, 3)
    terminals = torch.tensor([[False, False, True]])
    _, returns = compute_gae(rewards, values, terminals, torch.ones(1, 3, dtype=torch.bool), 1.0, 1.0)
    torch.testing.assert_close(returns, torch.tensor([[6.0, 5.0, 3.0]]))


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="one \\[env, time\\] shape"):
        compute_gae(
            torch.zeros(2, 3),
            torch.zeros(2, 4),
            torch.zeros(2, 3, dtype=torch.bool),
            torch.ones(2, 3, dtype=torch.bool),
            0.9,
            0.9,
        )
