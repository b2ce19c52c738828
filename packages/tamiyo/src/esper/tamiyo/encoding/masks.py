"""Action masks: leyline's legality rule as arrays, per env, per op and per slot.

Masks encode physical impossibility only; timing is learned from reward. Which action is legal where is decided
by ``esper.leyline.legality`` and nowhere else (kasmina and simic refuse exactly what it forbids). This module
codes each slot's ``SlotCondition`` as a small integer, looks each env's combination of codes up in a table of
whole mask rows (leyline's ``legal_slots_by_op`` asked the first time a combination is seen, with the op mask it
implies and the static heads' rows beside it) and takes the whole batch's masks from that table with one indexing
operation; every mask of the batch is a view of that one array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import cast

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import (
    MIN_PRUNE_AGE,
    ActionHead,
    ActionMasks,
    AlphaMode,
    EnvObservation,
    InvalidStateMachineError,
    LifecycleOp,
    SeedStage,
    SlotCondition,
    SlotConfig,
    Topology,
    head_sizes,
    legal_blueprints,
    legal_slots_by_op,
    mask_columns,
)
from esper.tamiyo.compiled import compiled
from esper.tamiyo.encoding import observation_columns as col
from esper.tamiyo.encoding.observation_columns import ObservationColumns, read_columns

BoolArray = npt.NDArray[np.bool_]

#: Heads whose mask does not depend on the env (the same row for every env of a topology).
STATIC_HEADS: tuple[ActionHead, ...] = tuple(h for h in ActionHead if h not in (ActionHead.SLOT, ActionHead.OP))
#: ``AlphaMode.HOLD`` as the seed columns hold it: any other mode is ramping.
_HOLD = float(AlphaMode.HOLD)


@dataclass(frozen=True, slots=True)
class MaskArrays:
    """The masks of a batch as numpy arrays (True = allowed): ``side_by_side`` as in leyline's ``ActionMasks``
    (for action-space ``head_sizes``), and ``op``, ``slot_by_op`` and ``heads`` as views of it (made when asked:
    the policy reads only the whole row)."""

    side_by_side: BoolArray
    head_sizes: Mapping[ActionHead, int]

    @property
    def op(self) -> BoolArray:
        """``[batch, num_ops]``."""
        return self.side_by_side[:, mask_columns(self.head_sizes)[ActionHead.OP]]

    @property
    def slot_by_op(self) -> BoolArray:
        """``[batch, num_ops, num_slots]``."""
        columns = self.side_by_side[:, mask_columns(self.head_sizes)[ActionHead.SLOT]]
        return columns.reshape(-1, self.head_sizes[ActionHead.OP], self.head_sizes[ActionHead.SLOT])

    @property
    def heads(self) -> Mapping[ActionHead, BoolArray]:
        """``{head: [batch, head_size]}`` for every head in ``STATIC_HEADS``."""
        columns = mask_columns(self.head_sizes)
        return MappingProxyType({head: self.side_by_side[:, columns[head]] for head in STATIC_HEADS})

    def to_tensors(self, device: torch.device | str = "cpu") -> ActionMasks:
        """The masks as leyline's ``ActionMasks`` on ``device`` (sharing the array's memory on the CPU)."""
        side_by_side = torch.from_numpy(self.side_by_side)
        if torch.device(device).type != "cpu":
            side_by_side = side_by_side.to(device)
        return ActionMasks(side_by_side, self.head_sizes)


class _MaskTable:
    """The whole mask row of every combination of slot conditions seen so far, keyed by the bytes of an env's
    condition codes and its "can germinate" flag. A row is laid side by side: the op mask, leyline's
    ``legal_slots_by_op`` flattened, then every static head's row (leyline's ``ActionMasks.side_by_side``), so a
    batch's masks are one indexing operation."""

    def __init__(self, num_slots: int, topology: Topology) -> None:
        ops = len(LifecycleOp)
        statics = static_head_rows(topology)
        sizes = {ActionHead.OP: ops, ActionHead.SLOT: num_slots, **{h: statics[h].size for h in STATIC_HEADS}}
        #: The action space's head sizes, the same mapping for every batch.
        self.head_sizes: Mapping[ActionHead, int] = MappingProxyType({head: sizes[head] for head in ActionHead})
        self._static = np.concatenate([statics[head] for head in STATIC_HEADS])
        #: An env's key (its ``num_slots + 1`` codes) read as one bytes value.
        self._key_bytes = np.dtype((np.void, num_slots + 1))
        self._index: dict[bytes, int] = {}
        self._rows: BoolArray = np.zeros((0, ops * (1 + num_slots) + self._static.size), dtype=np.bool_)

    def masks(self, keys: npt.NDArray[np.uint8]) -> MaskArrays:
        """The masks of envs with ``keys`` ``[envs, num_slots + 1]`` (codes, then can-germinate); raises
        ``InvalidStateMachineError`` naming the batch rows whose state allows no op."""
        packed = cast(list[bytes], np.ascontiguousarray(keys).view(self._key_bytes).ravel().tolist())
        found = list(map(self._index.get, packed))
        if None in found:
            self._add(packed, found)
            found = list(map(self._index.get, packed))
        return MaskArrays(self._rows.take(cast(list[int], found), axis=0), self.head_sizes)

    def _add(self, packed: list[bytes], found: list[int | None]) -> None:
        """Ask leyline for the rows of the keys not seen yet; a key whose state allows no op is never stored."""
        new = list(dict.fromkeys(key for key, index in zip(packed, found, strict=True) if index is None))
        added, impossible = [], set()
        for key in new:
            *codes, can_germinate = key
            conditions = tuple(SlotCondition(SeedStage(code // 4), bool(code & 2), bool(code & 1)) for code in codes)
            slot_by_op = np.array(legal_slots_by_op(conditions, bool(can_germinate)), dtype=np.bool_)
            op = slot_by_op.any(axis=1)
            if not op.any():
                impossible.add(key)
            added.append(np.concatenate((op, slot_by_op.ravel(), self._static)))
        if impossible:
            rows = [index for index, key in enumerate(packed) if key in impossible]
            raise InvalidStateMachineError(f"all-false op mask at batch rows {rows}: no action is possible")
        start = self._rows.shape[0]
        self._rows = np.concatenate((self._rows, np.array(added, dtype=np.bool_)))
        self._index.update({key: start + offset for offset, key in enumerate(new)})


@cache
def _mask_table(num_slots: int, topology: Topology) -> _MaskTable:
    return _MaskTable(num_slots, topology)


def condition_keys(columns: ObservationColumns) -> npt.NDArray[np.uint8]:
    """``[envs, num_slots + 1]``: each slot's ``SlotCondition`` code, then whether germinations remain."""
    keys = np.empty((columns.envs, columns.num_slots + 1), dtype=np.uint8)
    _condition_codes(columns.env, columns.stage_and_dwell, columns.seed_slots, columns.seeds, keys)
    return keys


@compiled
def _condition_codes(
    env: npt.NDArray[np.float64],
    stage_and_dwell: npt.NDArray[np.int64],
    seed_slots: npt.NDArray[np.int64],
    seeds: npt.NDArray[np.float64],
    keys: npt.NDArray[np.uint8],
) -> None:
    """Fill ``keys``: a slot's code is ``stage * 4 + prune_age_reached * 2 + ramping`` (both 0 without a seed)."""
    num_slots = keys.shape[1] - 1
    for env_index in range(keys.shape[0]):
        for slot in range(num_slots):
            keys[env_index, slot] = stage_and_dwell[env_index * num_slots + slot, 0] * 4
        keys[env_index, num_slots] = 1 if env[env_index, col.GERMINATIONS_REMAINING] > 0 else 0
    for seed_index in range(seed_slots.shape[0]):
        seed, flat_slot = seeds[seed_index], seed_slots[seed_index]
        prune_age_reached = 2 if seed[col.AGE_EPOCHS] >= MIN_PRUNE_AGE else 0
        ramping = 1 if seed[col.ALPHA_MODE] != _HOLD else 0
        keys[flat_slot // num_slots, flat_slot % num_slots] += prune_age_reached + ramping


@cache
def static_head_rows(topology: Topology) -> Mapping[ActionHead, BoolArray]:
    """One read-only mask row per head that does not depend on the env: every style, tempo and alpha choice is
    legal; the blueprint row is leyline's ``legal_blueprints`` (never NOOP). Raises if a row allows nothing."""
    sizes = head_sizes(SlotConfig.after_blocks(1), topology)  # these heads' sizes do not depend on the slots
    rows = {head: np.ones(sizes[head], dtype=np.bool_) for head in STATIC_HEADS}
    rows[ActionHead.BLUEPRINT] = np.array(legal_blueprints(topology), dtype=np.bool_)
    for head, row in rows.items():
        require_nonempty_rows(row, head.value)
        row.flags.writeable = False
    return MappingProxyType(rows)


def require_nonempty_rows(mask: BoolArray, name: str) -> None:
    """An all-false row means the lifecycle reached a state the contracts call impossible."""
    empty = ~mask.any(axis=-1)
    if empty.any():
        rows = np.flatnonzero(empty).tolist()
        raise InvalidStateMachineError(f"all-false {name} mask at batch rows {rows}: no action is possible")


def masks_of_columns(columns: ObservationColumns, topology: Topology) -> MaskArrays:
    """Masks of a batch already read into columns, from leyline's rule; raises on a state that allows no op."""
    return _mask_table(columns.num_slots, topology).masks(condition_keys(columns))


def build_mask_arrays(
    observations: Sequence[EnvObservation], slot_config: SlotConfig, topology: Topology
) -> MaskArrays:
    return masks_of_columns(read_columns(observations, slot_config), topology)


def build_action_masks(
    observations: Sequence[EnvObservation],
    slot_config: SlotConfig,
    topology: Topology,
    device: torch.device | str = "cpu",
) -> ActionMasks:
    """Leyline ``ActionMasks`` of a batch, on ``device``."""
    return build_mask_arrays(observations, slot_config, topology).to_tensors(device)
