"""The PPO loss of one minibatch, as a pure function with CleanRL's names (``pg_loss``, ``v_loss``,
``entropy_loss``).

The action is factored into heads (``HEAD_ORDER``), so per-head tensors are stacked heads first:
``[heads, env, time]``; per-step tensors are ``[env, time]``. The joint policy of a step is the product of the
heads that mattered for its op (causal relevance), so its score-function gradient is the sum of those heads'
gradients: each head gets its own clipped surrogate, and heads the op ignored are masked out of every term.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class PPOLoss(NamedTuple):
    loss: Tensor
    pg_loss: Tensor
    v_loss: Tensor
    #: The entropy bonus (subtracted from the loss, as in CleanRL).
    entropy_loss: Tensor
    #: ``[heads, env, time]``: log(new / old) probability per head, exactly 0 where the head did not matter.
    log_ratio: Tensor
    ratio: Tensor


def ppo_loss(
    new_log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    relevant: Tensor,
    entropy: Tensor,
    choice: Tensor,
    new_values: Tensor,
    value_targets: Tensor,
    valid: Tensor,
    *,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
) -> PPOLoss:
    """``new_log_probs``, ``old_log_probs``, ``entropy`` (normalized, in [0, 1]): ``[heads, env, time]`` float;
    ``relevant`` (the head mattered for the op) and ``choice`` (it mattered and had more than one allowed
    action): ``[heads, env, time]`` bool; ``advantages``, ``new_values``, ``value_targets``: ``[env, time]``
    float; ``valid``: ``[env, time]`` bool, False on the padding after an episode's end."""
    n_valid = valid.sum().clamp(min=1)

    # Clipped surrogate per head; each head's is averaged over all valid steps, so their sum is the clipped
    # score function of the joint action.
    log_ratio = torch.where(relevant, new_log_probs - old_log_probs, 0.0)
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    surrogate = torch.minimum(ratio * advantages, clipped * advantages)
    pg_loss = -(surrogate * relevant).sum() / n_valid

    # Value loss on normalized returns (the value head's units), unclipped.
    v_loss = 0.5 * (((new_values - value_targets) ** 2) * valid).sum() / n_valid

    # Entropy bonus: the mean over the heads that had a choice of each head's mean entropy over those steps (a
    # forced choice has entropy 0 by definition and would only dilute it).
    counts = choice.sum(dim=(1, 2))
    choosing_heads = counts > 0
    head_entropy = (entropy * choice).sum(dim=(1, 2)) / counts.clamp(min=1)
    if bool(choosing_heads.any()):
        entropy_loss = head_entropy[choosing_heads].mean()
    else:
        entropy_loss = torch.zeros((), device=entropy.device)

    loss = pg_loss + vf_coef * v_loss - ent_coef * entropy_loss
    return PPOLoss(loss, pg_loss, v_loss, entropy_loss, log_ratio, ratio)
