"""Canonicalization of the heads an op ignores, written once for rollout and update.

Once the op is known, every head that is causally irrelevant to it (leyline's ``CAUSAL_RELEVANCE``) has its
mask reduced to a single placeholder action: leyline's ``HEAD_PLACEHOLDERS``, and for the slot head the first
slot its (op-conditioned) mask allows. Such a head then has log-prob exactly 0 and entropy exactly 0, at rollout
time and at update time alike, so it contributes nothing to the ratio, the KL or the entropy bonus.
"""

from __future__ import annotations

from functools import cache

import torch

from esper.leyline import HEAD_ORDER, HEAD_PLACEHOLDERS, ActionHead, relevance_rows
from esper.tamiyo.policy.head_layout import HEAD_INDEX

_SLOT = HEAD_INDEX[ActionHead.SLOT]


# The tables below are built once per device as ordinary tensors (never inference-mode tensors, even when the
# first call happens inside ``torch.inference_mode``), so rollout and update share them.


@cache
def _relevance(device: torch.device) -> torch.Tensor:
    """``[num_ops, H]`` bool, leyline's relevance table (HEAD_ORDER columns)."""
    with torch.inference_mode(False):
        return torch.tensor(relevance_rows(), dtype=torch.bool, device=device)


@cache
def _placeholder_tables(width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``[H, width]`` bool one-hot rows at ``HEAD_PLACEHOLDERS`` (slot and op rows all False: the slot
    placeholder depends on the mask, and op is always relevant) and ``[H, 1]`` bool marking the slot row."""
    with torch.inference_mode(False):
        rows = torch.zeros(len(HEAD_ORDER), width, dtype=torch.bool, device=device)
        for head, placeholder in HEAD_PLACEHOLDERS.items():
            rows[HEAD_INDEX[head], placeholder] = True
        is_slot_row = (torch.arange(len(HEAD_ORDER), device=device) == _SLOT).unsqueeze(-1)
    return rows, is_slot_row


def relevance(ops: torch.Tensor) -> torch.Tensor:
    """``[..., H]`` bool: which heads matter for each op of ``ops`` ``[...]`` (columns in HEAD_ORDER). The one
    tensor form of leyline's table: the bundle returns it with every action (``ActionResult.relevant``), so simic
    masks its PPO terms with this very tensor instead of building its own."""
    return _relevance(ops.device)[ops]


def canonical_masks(ops: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The masks ``[..., H, width]`` each head is actually scored with, given the chosen ``ops`` ``[...]``.

    ``masks`` is the padded per-head mask (``HeadLayout.pad_masks``) whose slot row is already conditioned on
    the op (the ``slot_by_op`` row of the chosen op). Relevant heads keep their row; irrelevant heads get the
    one-hot placeholder row.
    """
    width = masks.shape[-1]
    positions = torch.arange(width, device=masks.device)
    first_slot = masks[..., _SLOT, :].to(torch.uint8).argmax(dim=-1, keepdim=True)  # argmax: first maximum
    slot_placeholder = (positions == first_slot).unsqueeze(-2)  # [..., 1, width]
    fixed, is_slot_row = _placeholder_tables(width, masks.device)
    placeholders = torch.where(is_slot_row, slot_placeholder, fixed)
    return torch.where(relevance(ops).unsqueeze(-1), masks, placeholders)
