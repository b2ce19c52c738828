"""Canonicalization of the heads an op ignores, written once for rollout and update.

Once the op is known, every head that is causally irrelevant to it (leyline's ``CAUSAL_RELEVANCE``) has its
mask reduced to a single placeholder action: leyline's ``HEAD_PLACEHOLDERS``, and for the slot head the first
slot its (op-conditioned) mask allows. Such a head then has log-prob exactly 0 and entropy exactly 0, at rollout
time and at update time alike, so it contributes nothing to the ratio, the KL or the entropy bonus.

Masks are boolean tables that never need gradients, so this runs on host numpy arrays (a few array operations
whatever the batch) at update time for the stored ops. The rollout's compiled sampler applies the same rule
row by row with the same tables (``relevance_table``, ``placeholder_rows``); the tests hold the two to each other
(every stored mask is canonical for its stored op).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from esper.leyline import HEAD_INDEX, HEAD_ORDER, HEAD_PLACEHOLDERS, ActionHead, relevance_rows

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_SLOT = HEAD_INDEX[ActionHead.SLOT]
#: ``[num_ops, H]``: leyline's relevance table (HEAD_ORDER columns).
_RELEVANCE: BoolArray = np.array(relevance_rows(), dtype=np.bool_)
_RELEVANCE.flags.writeable = False


@cache
def placeholder_rows(width: int) -> BoolArray:
    """``[H, width]`` one-hot rows at ``HEAD_PLACEHOLDERS`` (slot and op rows all False: the slot placeholder
    depends on the mask, and op is always relevant)."""
    rows = np.zeros((len(HEAD_ORDER), width), dtype=np.bool_)
    for head, placeholder in HEAD_PLACEHOLDERS.items():
        rows[HEAD_INDEX[head], placeholder] = True
    rows.flags.writeable = False
    return rows


def relevance_table() -> BoolArray:
    """``[num_ops, H]``: leyline's relevance table (HEAD_ORDER columns), read-only."""
    return _RELEVANCE


def relevance(ops: IntArray) -> BoolArray:
    """``[..., H]``: which heads matter for each op of ``ops`` ``[...]`` (columns in HEAD_ORDER), read from
    ``relevance_table``: the one array form of leyline's table. The rollout's sampler returns its rows with every
    action (``ActionResult.relevant``), so simic masks its PPO terms with this very table instead of building
    its own, and ``canonical_masks`` reads it too."""
    relevant: BoolArray = _RELEVANCE[ops]
    return relevant


def canonical_masks(ops: IntArray, masks: BoolArray) -> BoolArray:
    """The masks ``[..., H, width]`` each head is actually scored with, given the chosen ``ops`` (broadcast
    against the leading dimensions of ``masks``).

    ``masks`` is the padded per-head mask (``ActionResult.masks``) whose slot row is already conditioned on the op (the
    ``slot_by_op`` row of that op). Relevant heads keep their row; irrelevant heads get the one-hot placeholder
    row.
    """
    width = masks.shape[-1]
    placeholders = np.empty_like(masks)
    placeholders[...] = placeholder_rows(width)
    first_slot = masks[..., _SLOT, :].argmax(axis=-1)  # argmax of booleans: the first allowed slot
    placeholders[..., _SLOT, :] = np.arange(width) == first_slot[..., None]
    return np.where(relevance(ops)[..., None], masks, placeholders)
