"""The factored action distribution: op first, then every other head under its canonical mask.

``sample_actions`` is the rollout side (one step per env), ``score_actions`` the update side (whole sequences).
Both score all heads through the same padded ``canonical_masks`` and the same ``MaskedCategorical``, so a stored
action gets exactly the log-prob it was sampled with. The joint log-prob of an action is the sum over heads
(irrelevant heads add exactly 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from esper.leyline import HEAD_ORDER, ActionExplanation, ActionHead, ActionMasks, InvalidStateMachineError
from esper.tamiyo.policy.canonical import canonical_masks, relevance
from esper.tamiyo.policy.distributions import MaskedCategorical, require_sound
from esper.tamiyo.policy.head_layout import HEAD_INDEX, HeadLayout

_OP = HEAD_INDEX[ActionHead.OP]


@dataclass(frozen=True, slots=True)
class SampledActions:
    """Per head: ``actions`` ``[batch]`` int64, ``log_probs`` ``[batch]`` float32, ``masks`` ``[batch, n]``
    bool (the canonical mask the action was drawn from, which the update must score with) and ``relevant``
    ``[batch]`` bool (the head matters for the drawn op)."""

    actions: dict[ActionHead, torch.Tensor]
    log_probs: dict[ActionHead, torch.Tensor]
    masks: dict[ActionHead, torch.Tensor]
    relevant: dict[ActionHead, torch.Tensor]
    explanation: ActionExplanation | None = None


@dataclass(frozen=True, slots=True)
class ScoredActions:
    """Per head, ``[batch, time]`` float32 log-probs and normalized entropies of stored actions."""

    log_probs: dict[ActionHead, torch.Tensor]
    entropy: dict[ActionHead, torch.Tensor]


def _draw(distribution: MaskedCategorical, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
    return distribution.mode() if deterministic else distribution.sample(generator)


def sample_actions(
    logits: torch.Tensor,
    masks: ActionMasks,
    layout: HeadLayout,
    *,
    deterministic: bool,
    generator: torch.Generator | None,
    explain: bool = False,
) -> SampledActions:
    """Draw one factored action per row from padded ``logits`` ``[batch, H, width]``: the op first, then every
    other head under the masks that op implies. Raises on an all-false mask row or a non-finite logit.
    ``explain`` adds the op probabilities and each head's normalized entropy (computed, never drawn)."""
    op_mask = layout.pad_row(masks.op, ActionHead.OP)
    op_distribution = MaskedCategorical(logits[:, _OP], op_mask)
    ops = _draw(op_distribution, deterministic, generator)
    slot_mask = masks.slot_by_op[torch.arange(ops.shape[0], device=ops.device), ops]
    canonical = canonical_masks(
        ops, layout.pad_masks({**masks.heads, ActionHead.SLOT: slot_mask, ActionHead.OP: masks.op})
    )
    require_sound(logits, {"op": op_mask, **_named(canonical)}, finite_logits=True)
    distribution = MaskedCategorical(logits, canonical)
    actions = _draw(distribution, deterministic, generator)
    actions[:, _OP] = ops
    explanation = None
    if explain:
        op_probabilities = op_distribution.log_probs[:, : layout.sizes[_OP]].exp()
        explanation = ActionExplanation(op_probabilities, layout.columns(distribution.entropy()))
    return SampledActions(
        actions=layout.columns(actions),
        log_probs=layout.columns(distribution.log_prob(actions)),
        masks=layout.split(canonical),
        relevant=layout.columns(relevance(ops)),
        explanation=explanation,
    )


def score_actions(
    logits: torch.Tensor,
    actions: Mapping[ActionHead, torch.Tensor],
    masks: Mapping[ActionHead, torch.Tensor],
    layout: HeadLayout,
    *,
    validate: bool,
) -> ScoredActions:
    """Log-probs and normalized entropies of stored ``actions[head]`` ``[batch, time]`` under the stored
    ``masks[head]`` ``[batch, time, n]``, from padded ``logits`` ``[batch, time, H, width]`` (the stored masks
    are re-canonicalized from the stored ops, which is idempotent). An all-false stored row raises; non-finite
    logits are left to the update, which skips a non-finite loss. ``validate`` also checks that every stored
    action is allowed by its stored mask."""
    stacked = torch.stack([actions[head] for head in HEAD_ORDER], dim=-1)
    stored = layout.pad_masks(masks)
    canonical = canonical_masks(stacked[..., _OP], stored)
    require_sound(logits, _named(canonical), finite_logits=False)
    distribution = MaskedCategorical(logits, canonical)
    if validate:
        _check_actions_allowed(stored, stacked)
    return ScoredActions(
        log_probs=layout.columns(distribution.log_prob(stacked)),
        entropy=layout.columns(distribution.entropy()),
    )


def _named(padded: torch.Tensor) -> dict[str, torch.Tensor]:
    """``[..., H, width]`` padded masks -> one named ``[..., width]`` mask per head."""
    return {head.value: padded[..., index, :] for index, head in enumerate(HEAD_ORDER)}


def _check_actions_allowed(masks: torch.Tensor, actions: torch.Tensor) -> None:
    """A stored action its stored mask forbids means rollout and update disagree (reads on the host: a sync)."""
    allowed = masks.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    if not bool(allowed.all()):
        heads = [
            head.value
            for head, ok in zip(HEAD_ORDER, allowed.flatten(0, -2).all(dim=0).tolist(), strict=True)
            if not ok
        ]
        raise InvalidStateMachineError(f"stored actions of heads {heads} are forbidden by their stored masks")
