"""The factored action distribution: op first, then every other head under its canonical mask.

``sample_actions`` is the rollout side (one step per env), ``score_actions`` the update side (whole sequences).
Both score all heads through the same padded ``canonical_masks`` and the same ``MaskedCategorical``, so a stored
action gets exactly the log-prob it was sampled with. The joint log-prob of an action is the sum over heads
(irrelevant heads add exactly 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import HEAD_ORDER, ActionExplanation, ActionHead, ActionMasks, InvalidStateMachineError
from esper.tamiyo.policy.canonical import canonical_masks, relevance
from esper.tamiyo.policy.distributions import (
    MaskedCategorical,
    draw,
    log_noise,
    require_finite,
    require_sound,
)
from esper.tamiyo.policy.head_layout import HEAD_INDEX, HeadLayout, host, on_device

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_OP = HEAD_INDEX[ActionHead.OP]
_HEADS = np.arange(len(HEAD_ORDER))


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
    ``explain`` adds the op probabilities and each head's normalized entropy (computed, never drawn).

    One masked log-softmax scores every head and the slot head under every op's slot mask (``candidates``);
    the op is drawn from its row, then every other head from its row for that op, each by Gumbel-max over
    padded log-probs. The noise is one draw from ``generator``: the op's ``[batch, width]`` values, then the
    heads' ``[batch, H, width]``. An irrelevant head gets its one-hot canonical mask, hence its placeholder with
    log-prob exactly 0, as it would if it were scored under that mask."""
    device = logits.device
    batch, heads, width = logits.shape
    require_finite(host(logits))
    candidates = layout.candidates(layout.side_by_side(masks))
    scored = MaskedCategorical(layout.candidate_logits(logits), on_device(candidates, device))
    log_probs = host(scored.log_probs)
    op_noise = head_noise = None
    if not deterministic:
        noise = host(log_noise((batch * width * (1 + heads),), device, generator))
        op_noise = noise[: batch * width].reshape(batch, width)
        head_noise = noise[batch * width :].reshape(batch, heads, width)
    ops = draw(log_probs[:, _OP], candidates[:, _OP], op_noise)
    rows = np.arange(batch)[:, None]
    chosen = layout.rows_for_ops[ops]  # [batch, H]: the candidate row each head is drawn from, given the op
    canonical = canonical_masks(ops, candidates[rows, chosen])
    require_sound(canonical)
    for_ops = log_probs[rows, chosen]
    actions = draw(for_ops, canonical, head_noise)
    actions[:, _OP] = ops
    relevant = relevance(ops)
    picked = np.where(relevant, for_ops[rows, _HEADS, actions], np.float32(0.0))
    explanation = None
    if explain:
        distribution = MaskedCategorical(logits, on_device(canonical, device))
        op_probabilities = scored.log_probs[:, _OP, : layout.sizes[_OP]].exp()
        explanation = ActionExplanation(op_probabilities, layout.columns(distribution.entropy()))
    return SampledActions(
        actions=layout.columns(on_device(actions, device)),
        log_probs=layout.columns(on_device(picked, device)),
        masks=layout.split(on_device(canonical, device)),
        relevant=layout.columns(on_device(relevant, device)),
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
    host_actions = host(stacked)
    canonical = canonical_masks(host_actions[..., _OP], stored)
    require_sound(canonical)
    if validate:
        _check_actions_allowed(stored, host_actions)
    distribution = MaskedCategorical(logits, on_device(canonical, logits.device))
    return ScoredActions(
        log_probs=layout.columns(distribution.log_prob(stacked)),
        entropy=layout.columns(distribution.entropy()),
    )


def _check_actions_allowed(masks: BoolArray, actions: IntArray) -> None:
    """A stored action its stored mask forbids means rollout and update disagree."""
    allowed = np.take_along_axis(masks, actions[..., None], axis=-1)[..., 0]
    if not allowed.all():
        flat = cast(list[bool], np.asarray(allowed).reshape(-1, len(HEAD_ORDER)).all(axis=0).tolist())
        heads = [head.value for head, ok in zip(HEAD_ORDER, flat, strict=True) if not ok]
        raise InvalidStateMachineError(f"stored actions of heads {heads} are forbidden by their stored masks")
