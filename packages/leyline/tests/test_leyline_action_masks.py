"""``ActionMasks``: one bool tensor laid side by side, built from its parts with ``of`` and read back through the
``op``, ``slot_by_op`` and ``heads`` views."""

from __future__ import annotations

import pytest
import torch

from esper.leyline import HEAD_ORDER, ActionHead, ActionMasks, MaskShapeError, SlotConfig, Topology, head_sizes

SIZES = head_sizes(SlotConfig.after_blocks(3), Topology.CNN)
#: The heads after op and slot, in the order ``side_by_side`` lays them out.
OTHER_HEADS = [head for head in HEAD_ORDER if head not in (ActionHead.OP, ActionHead.SLOT)]
COLUMNS = 6 + 6 * 3 + 8 + 4 + 3 + 3 + 4 + 5


def _parts(batch: int) -> tuple[torch.Tensor, torch.Tensor, dict[ActionHead, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)

    def bits(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator) < 0.5

    ops, slots = SIZES[ActionHead.OP], SIZES[ActionHead.SLOT]
    return bits(batch, ops), bits(batch, ops, slots), {head: bits(batch, SIZES[head]) for head in OTHER_HEADS}


def test_of_lays_the_parts_side_by_side_and_the_views_read_them_back() -> None:
    op, slot_by_op, heads = _parts(batch=3)
    masks = ActionMasks.of(op, slot_by_op, heads)
    assert dict(masks.head_sizes) == SIZES and list(masks.head_sizes) == list(HEAD_ORDER)
    assert masks.side_by_side.shape == (3, COLUMNS) and masks.side_by_side.dtype == torch.bool
    expected = torch.cat([op, slot_by_op.flatten(1), *(heads[head] for head in OTHER_HEADS)], dim=1)
    assert torch.equal(masks.side_by_side, expected)
    assert torch.equal(masks.op, op) and torch.equal(masks.slot_by_op, slot_by_op)
    assert list(masks.heads) == OTHER_HEADS
    assert all(torch.equal(masks.heads[head], heads[head]) for head in OTHER_HEADS)


def test_the_views_share_the_one_tensor() -> None:
    masks = ActionMasks.of(*_parts(batch=2))
    masks.side_by_side[:] = False
    masks.side_by_side[1, 6 + 2 * 3 + 1] = True  # row 1: op 2, slot 1
    assert not masks.op.any()
    assert masks.slot_by_op.nonzero().tolist() == [[1, 2, 1]]
    assert not any(mask.any() for mask in masks.heads.values())


def test_a_tensor_of_the_wrong_width_or_rank_is_refused() -> None:
    with pytest.raises(MaskShapeError, match=rf"shape \[2, {COLUMNS - 1}\], expected \[batch, {COLUMNS}\]"):
        ActionMasks(torch.ones(2, COLUMNS - 1, dtype=torch.bool), SIZES)
    with pytest.raises(MaskShapeError, match=r"for head sizes \[3, 8, 4, 3, 3, 4, 5, 6\]"):
        ActionMasks(torch.ones(COLUMNS, dtype=torch.bool), SIZES)


def test_of_refuses_missing_heads() -> None:
    op, slot_by_op, heads = _parts(batch=1)
    del heads[ActionHead.TEMPO]
    with pytest.raises(MaskShapeError, match=r"lack the heads \['tempo'\]"):
        ActionMasks.of(op, slot_by_op, heads)
