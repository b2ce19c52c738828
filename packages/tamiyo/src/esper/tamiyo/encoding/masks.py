"""Action masks: leyline's legality rule as tensors, per env, per op and per slot.

Masks encode physical impossibility only; timing is learned from reward. Which action is legal where is decided
by ``esper.leyline.legality`` and nowhere else (kasmina and simic refuse exactly what it forbids); this module
only reads each env's slot conditions, looks their rows up in leyline's cached table and stacks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import (
    ActionHead,
    ActionMasks,
    EnvObservation,
    InvalidStateMachineError,
    SlotCondition,
    SlotConfig,
    Topology,
    head_sizes,
    legal_blueprints,
    legal_slots_by_op,
)
from esper.tamiyo.encoding.observation_checks import require_configured_slots

BoolArray = npt.NDArray[np.bool_]

#: Heads whose mask does not depend on the env (the same row for every env of a topology).
STATIC_HEADS: tuple[ActionHead, ...] = tuple(h for h in ActionHead if h not in (ActionHead.SLOT, ActionHead.OP))


@dataclass(frozen=True, slots=True)
class MaskArrays:
    """The masks of a batch as numpy arrays (True = allowed); shapes as in leyline's ``ActionMasks``."""

    op: BoolArray
    slot_by_op: BoolArray
    heads: Mapping[ActionHead, BoolArray]

    def to_tensors(self, device: torch.device | str = "cpu") -> ActionMasks:
        return ActionMasks(
            op=torch.from_numpy(self.op).to(device),
            slot_by_op=torch.from_numpy(self.slot_by_op).to(device),
            heads=MappingProxyType({head: torch.from_numpy(mask).to(device) for head, mask in self.heads.items()}),
        )


def slot_by_op_rows(observations: Sequence[EnvObservation], slot_config: SlotConfig) -> BoolArray:
    """``[batch, op, slot]`` legality of every env, from leyline's rule (the only per-env loop of masking)."""
    rows = []
    for observation in observations:
        require_configured_slots(observation, slot_config)
        conditions = tuple(SlotCondition.of(report) for report in observation.slots)
        rows.append(legal_slots_by_op(conditions, observation.germinations_remaining > 0))
    return np.array(rows, dtype=np.bool_).reshape(len(observations), -1, slot_config.num_slots)


@cache
def static_head_rows(topology: Topology) -> Mapping[ActionHead, BoolArray]:
    """One read-only mask row per head that does not depend on the env: every style, tempo and alpha choice is
    legal; the blueprint row is leyline's ``legal_blueprints`` (never NOOP)."""
    sizes = head_sizes(SlotConfig.after_blocks(1), topology)  # these heads' sizes do not depend on the slots
    rows = {head: np.ones(sizes[head], dtype=np.bool_) for head in STATIC_HEADS}
    rows[ActionHead.BLUEPRINT] = np.array(legal_blueprints(topology), dtype=np.bool_)
    for row in rows.values():
        row.flags.writeable = False
    return MappingProxyType(rows)


def compute_mask_arrays(slot_by_op: BoolArray, topology: Topology) -> MaskArrays:
    """Masks of a batch from its ``[batch, op, slot]`` legality; raise on an all-false row."""
    batch = slot_by_op.shape[0]
    op = np.asarray(slot_by_op.any(axis=2))
    heads = {head: np.broadcast_to(row, (batch, row.size)).copy() for head, row in static_head_rows(topology).items()}
    require_nonempty_rows(op, ActionHead.OP.value)
    for head, mask in heads.items():
        require_nonempty_rows(mask, head.value)
    return MaskArrays(op, slot_by_op, MappingProxyType(heads))


def require_nonempty_rows(mask: BoolArray, name: str) -> None:
    """An all-false row means the lifecycle reached a state the contracts call impossible."""
    empty = ~mask.any(axis=-1)
    if empty.any():
        rows = np.flatnonzero(empty).tolist()
        raise InvalidStateMachineError(f"all-false {name} mask at batch rows {rows}: no action is possible")


def build_mask_arrays(
    observations: Sequence[EnvObservation], slot_config: SlotConfig, topology: Topology
) -> MaskArrays:
    return compute_mask_arrays(slot_by_op_rows(observations, slot_config), topology)


def build_action_masks(
    observations: Sequence[EnvObservation],
    slot_config: SlotConfig,
    topology: Topology,
    device: torch.device | str = "cpu",
) -> ActionMasks:
    """Leyline ``ActionMasks`` of a batch, on ``device``."""
    return build_mask_arrays(observations, slot_config, topology).to_tensors(device)
