"""The factored action distribution: op first, then every other head under its canonical mask.

``sample_actions`` is the rollout side (one step per env), ``score_actions`` the update side (whole sequences).
The update scores all heads through ``canonical_masks`` and the torch ``MaskedCategorical`` (it needs gradients).
The rollout needs none, and is one compiled pass over the batch (``_draw_factored``): the same canonical rule,
the row form of the same masked log-softmax (``masked_log_softmax_row``) and Gumbel-max (``pick``), so a
stored action gets the log-prob it is re-scored with, up to the last bits of ``exp`` (tests: seam parity within
1e-5). The joint log-prob of an action is the sum over heads (irrelevant heads add exactly 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import HEAD_INDEX, HEAD_ORDER, ActionExplanation, ActionHead, ActionMasks, InvalidStateMachineError
from esper.tamiyo.compiled import compiled
from esper.tamiyo.policy.canonical import canonical_masks, placeholder_rows, relevance_table
from esper.tamiyo.policy.distributions import (
    MASKED_LOGIT_VALUE,
    MaskedCategorical,
    log_noise,
    require_finite,
    require_sound,
)
from esper.tamiyo.policy.head_layout import HeadLayout, host, on_device

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_OP = HEAD_INDEX[ActionHead.OP]
_SLOT = HEAD_INDEX[ActionHead.SLOT]


@dataclass(frozen=True, slots=True)
class SampledActions:
    """One column per head (``HEAD_INDEX``), as ``ActionResult`` carries them: ``actions`` ``[batch, H]`` int64,
    ``log_probs`` ``[batch, H]`` float32, ``masks`` ``[batch, H, width]`` bool (the canonical mask each action was
    drawn from, which the update must score with) and ``relevant`` ``[batch, H]`` bool (the head matters for the
    drawn op)."""

    actions: torch.Tensor
    log_probs: torch.Tensor
    masks: torch.Tensor
    relevant: torch.Tensor
    explanation: ActionExplanation | None = None


@dataclass(frozen=True, slots=True)
class ScoredActions:
    """``[batch, time, H]`` float32 log-probs and normalized entropies of stored actions."""

    log_probs: torch.Tensor
    entropy: torch.Tensor


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

    The noise is one draw from ``generator`` (the op's ``[batch, width]`` values, then the heads'
    ``[batch, H, width]``): on the CPU float64 uniforms, which the compiled pass turns into ``log E`` only where it
    reads them (``exponential_log``: the values of ``Tensor.exponential_``, which the same generator state would
    give), elsewhere ``log_noise``'s values. Everything after the draw is one compiled pass over the batch
    (``_draw_factored``). An irrelevant head gets its one-hot canonical mask, hence its placeholder with log-prob
    exactly 0, as it would if it were scored under that mask."""
    device = logits.device
    batch, heads, width = logits.shape
    side_by_side = host(masks.side_by_side)
    noise, uniform = _NO_NOISE, device.type == "cpu"
    if not deterministic:
        count = batch * width * (1 + heads)
        if uniform:
            noise = host(torch.empty(count, dtype=torch.float64).uniform_(generator=generator))
        else:
            noise = host(log_noise((count,), device, generator)).astype(np.float64)
    actions = np.empty((batch, heads), dtype=np.int64)
    picked = np.empty((batch, heads), dtype=np.float32)
    canonical = np.empty((batch, heads, width), dtype=np.bool_)
    relevant = np.empty((batch, heads), dtype=np.bool_)
    status = _draw_factored(
        np.ascontiguousarray(host(logits.float())),
        side_by_side,
        layout.candidate_source,
        layout.candidate_real,
        layout.rows_for_ops,
        relevance_table(),
        placeholder_rows(width),
        noise,
        uniform,
        actions,
        picked,
        canonical,
        relevant,
    )
    if status == _NONFINITE:
        require_finite(host(logits.float()))
    if status == _UNSOUND:
        require_sound(canonical)
    explanation = None
    if explain:
        distribution = MaskedCategorical(logits, on_device(canonical, device))
        op_probabilities = distribution.log_probs[:, _OP, : layout.sizes[_OP]].exp()
        explanation = ActionExplanation(op_probabilities, distribution.entropy())
    return SampledActions(
        actions=on_device(actions, device),
        log_probs=on_device(picked, device),
        masks=on_device(canonical, device),
        relevant=on_device(relevant, device),
        explanation=explanation,
    )


#: ``_draw_factored``'s outcomes: every row drawn, a non-finite logit, a canonical mask row that allows nothing.
_DRAWN, _NONFINITE, _UNSOUND = 0, 1, 2
#: The noise argument of a deterministic draw.
_NO_NOISE = np.empty(0, dtype=np.float64)
_MASKED_LOGIT = np.float32(MASKED_LOGIT_VALUE)


@compiled
def masked_log_softmax_row(
    logits: npt.NDArray[np.float32],
    mask_source: npt.NDArray[np.intp],
    mask_real: BoolArray,
    side_by_side: BoolArray,
    out: npt.NDArray[np.float32],
    allowed: BoolArray,
) -> None:
    """The rollout's ``MaskedCategorical`` for one row: the row's mask (``allowed``, read from a batch
    row of masks laid side by side through the row's gather index: ``mask_source`` and ``mask_real``) and the
    float32 log-softmax of its masked logits into ``out`` (the same formula in the same order; ``exp`` may
    differ from torch's in the last bit, a rounding the update's re-score then sees as a ratio of 1 +- 1e-7)."""
    width = logits.shape[0]
    largest = _MASKED_LOGIT
    for column in range(width):
        allowed[column] = mask_real[column] and side_by_side[mask_source[column]]
        out[column] = logits[column] if allowed[column] else _MASKED_LOGIT
        if column == 0 or out[column] > largest:
            largest = out[column]
    total = np.float32(0.0)
    for column in range(width):
        out[column] = out[column] - largest
        total += np.float32(math.exp(out[column]))
    log_total = np.float32(math.log(total))
    for column in range(width):
        out[column] = out[column] - log_total


@compiled
def pick(
    log_probs: npt.NDArray[np.float32], allowed: BoolArray, noise: npt.NDArray[np.float64], uniform: bool, start: int
) -> int:
    """One action from one row of ``log_probs``: with ``noise`` (this row's from ``start``: uniforms if
    ``uniform``, else ``log_noise`` values) a sample, the allowed column with the largest ``log p - log E``
    (Gumbel-max); with an empty ``noise`` the most probable allowed column. The first one on ties, 0 when nothing
    is allowed."""
    best, best_score, found = 0, np.float32(0.0), False
    for column in range(log_probs.shape[0]):
        if not allowed[column]:
            continue
        score = log_probs[column]
        if noise.shape[0]:
            score -= exponential_log(noise[start + column]) if uniform else np.float32(noise[start + column])
        if not found or score > best_score:
            best, best_score, found = column, score, True
    return best


@compiled
def exponential_log(uniform: float) -> np.float32:
    """``log E`` for ``E ~ Exp(1)`` from a float64 uniform: ``E = -log1p(-U)`` rounded to float32, which is exactly
    ``Tensor.exponential_``'s CPU draw from the same generator state, then its log in float64 rounded to float32
    (torch's vectorized float32 log may differ from it in the last bit)."""
    exponential = np.float32(-math.log1p(-uniform))
    return np.float32(math.log(np.float64(exponential)))


@compiled
def _draw_factored(
    logits: npt.NDArray[np.float32],
    side_by_side: BoolArray,
    candidate_source: npt.NDArray[np.intp],
    candidate_real: BoolArray,
    rows_for_ops: IntArray,
    relevance: BoolArray,
    placeholders: BoolArray,
    noise: npt.NDArray[np.float64],
    uniform: bool,
    actions: IntArray,
    picked: npt.NDArray[np.float32],
    canonical: BoolArray,
    relevant: BoolArray,
) -> int:
    """Every row of the batch: the op from its candidate row, then each head from the row ``rows_for_ops`` names
    for that op, under its canonical mask (``canonical_masks``'s rule: relevant heads keep their row, the others
    get their placeholder, the slot head's being the first slot its op allows). Fills the outputs and returns
    ``_DRAWN``, or ``_NONFINITE`` before drawing anything, or ``_UNSOUND`` after filling every mask."""
    batch, heads, width = logits.shape
    for value in logits.ravel():
        if not math.isfinite(value):
            return _NONFINITE
    status = _DRAWN
    op_log_probs, log_probs = np.empty(width, dtype=np.float32), np.empty(width, dtype=np.float32)
    op_allowed = np.empty(width, dtype=np.bool_)
    for row in range(batch):
        start = _OP * width
        gather, real = candidate_source[start : start + width], candidate_real[start : start + width]
        masked_log_softmax_row(logits[row, _OP], gather, real, side_by_side[row], op_log_probs, op_allowed)
        op = pick(op_log_probs, op_allowed, noise, uniform, row * width)
        for head in range(heads):
            is_relevant = relevance[op, head]
            relevant[row, head] = is_relevant
            mask = canonical[row, head]
            if head == _OP:
                mask[:] = op_allowed
                actions[row, head] = op
                picked[row, head] = op_log_probs[op]
            elif is_relevant:
                start = rows_for_ops[op, head] * width
                gather, real = candidate_source[start : start + width], candidate_real[start : start + width]
                masked_log_softmax_row(logits[row, head], gather, real, side_by_side[row], log_probs, mask)
                action = pick(log_probs, mask, noise, uniform, (batch + row * heads + head) * width)
                actions[row, head] = action
                picked[row, head] = log_probs[action]
            else:  # its placeholder; the slot head's is the first slot the op allows (0 if none)
                mask[:] = placeholders[head]
                if head == _SLOT:
                    start = rows_for_ops[op, head] * width
                    mask[:] = False
                    for column in range(width):
                        if candidate_real[start + column] and side_by_side[row, candidate_source[start + column]]:
                            mask[column] = True
                            break
                    if not mask.any():
                        mask[0] = True
                actions[row, head] = np.argmax(mask)
                picked[row, head] = np.float32(0.0)
            if not mask.any():
                status = _UNSOUND
    return status


def score_actions(logits: torch.Tensor, actions: torch.Tensor, masks: torch.Tensor, *, validate: bool) -> ScoredActions:
    """Log-probs and normalized entropies of stored ``actions`` ``[batch, time, H]`` under the stored ``masks``
    ``[batch, time, H, width]``, from padded ``logits`` ``[batch, time, H, width]`` (the stored masks are
    re-canonicalized from the stored ops, which is idempotent). An all-false stored row raises; non-finite
    logits are left to the update, which skips a non-finite loss. ``validate`` also checks that every stored
    action is allowed by its stored mask."""
    stored = host(masks)
    host_actions = host(actions)
    canonical = canonical_masks(host_actions[..., _OP], stored)
    require_sound(canonical)
    if validate:
        _check_actions_allowed(stored, host_actions)
    distribution = MaskedCategorical(logits, on_device(canonical, logits.device))
    return ScoredActions(log_probs=distribution.log_prob(actions), entropy=distribution.entropy())


def _check_actions_allowed(masks: BoolArray, actions: IntArray) -> None:
    """A stored action its stored mask forbids means rollout and update disagree."""
    allowed = np.take_along_axis(masks, actions[..., None], axis=-1)[..., 0]
    if not allowed.all():
        flat = cast(list[bool], np.asarray(allowed).reshape(-1, len(HEAD_ORDER)).all(axis=0).tolist())
        heads = [head.value for head, ok in zip(HEAD_ORDER, flat, strict=True) if not ok]
        raise InvalidStateMachineError(f"stored actions of heads {heads} are forbidden by their stored masks")
