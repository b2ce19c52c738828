"""Action masks: which actions are physically possible, per env, per op and per slot (domain spec section 2).

Masks encode physical impossibility only; timing is learned from reward. The rules are evaluated for a whole
batch at once on numpy arrays of per-slot state (``SlotStates``), filled once per env from typed reports. Every
stage set comes from leyline's transition table, directly or derived below.
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
    ADVANCEABLE_STAGES,
    FAILURE_STAGES,
    FOSSILIZABLE_STAGES,
    LIVE_STAGES,
    MIN_PRUNE_AGE,
    PRUNABLE_STAGES,
    TOPOLOGY_BLUEPRINTS,
    VALID_TRANSITIONS,
    ActionHead,
    ActionMasks,
    Blueprint,
    EnvObservation,
    InvalidStateMachineError,
    LifecycleOp,
    SeedStage,
    SlotConfig,
    Topology,
    head_sizes,
)
from esper.tamiyo.observation_checks import require_configured_slots

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Stages joined by the one backward live edge of the table (HOLDING -> BLENDING, taken by SET_ALPHA_TARGET):
#: the stages where alpha is in play and may be retargeted.
ALPHA_SETTABLE_STAGES: frozenset[SeedStage] = frozenset(
    stage
    for source in LIVE_STAGES
    for target in VALID_TRANSITIONS[source]
    if target in LIVE_STAGES and target < source
    for stage in (source, target)
)

#: A slot in one of these stages blocks every germination: live seeds still developing before blending
#: (seeds develop one at a time, which also blocks germinate-prune farming) and the failure cooldown.
GERMINATION_BLOCKING_STAGES: frozenset[SeedStage] = (LIVE_STAGES - ALPHA_SETTABLE_STAGES) | FAILURE_STAGES

#: Heads whose mask does not depend on the env (the same row for every env of a topology).
STATIC_HEADS: tuple[ActionHead, ...] = tuple(h for h in ActionHead if h not in (ActionHead.SLOT, ActionHead.OP))


def _stage_lookup(stages: frozenset[SeedStage]) -> BoolArray:
    """``lookup[stage_value]`` is True when the stage is in ``stages`` (vectorized membership)."""
    return np.array([stage in stages for stage in SeedStage], dtype=np.bool_)


_EMPTY = _stage_lookup(frozenset({SeedStage.DORMANT}))
_BLOCKS_GERMINATION = _stage_lookup(GERMINATION_BLOCKING_STAGES)
_ADVANCEABLE = _stage_lookup(ADVANCEABLE_STAGES)
_FOSSILIZABLE = _stage_lookup(FOSSILIZABLE_STAGES)
_PRUNABLE = _stage_lookup(PRUNABLE_STAGES)
_ALPHA_SETTABLE = _stage_lookup(ALPHA_SETTABLE_STAGES)


@dataclass(frozen=True, slots=True)
class SlotStates:
    """What the mask rules read, for a batch. An empty slot is an explicit ``DORMANT`` entry, never a gap.

    - ``stage``: ``[batch, num_slots]`` int64 ``SeedStage`` values;
    - ``seed_age``: ``[batch, num_slots]`` int64 epochs since germination (0 without a seed);
    - ``ramping``: ``[batch, num_slots]`` bool, alpha is moving (0 without a seed);
    - ``germinations_remaining``: ``[batch]`` int64, the seed cap left.
    """

    stage: IntArray
    seed_age: IntArray
    ramping: BoolArray
    germinations_remaining: IntArray


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


def collect_slot_states(observations: Sequence[EnvObservation], slot_config: SlotConfig) -> SlotStates:
    """Read every slot report of the batch into arrays (the only per-element loop of mask building)."""
    shape = (len(observations), slot_config.num_slots)
    stage = np.zeros(shape, dtype=np.int64)
    seed_age = np.zeros(shape, dtype=np.int64)
    ramping = np.zeros(shape, dtype=np.bool_)
    remaining = np.zeros(len(observations), dtype=np.int64)
    for row, observation in enumerate(observations):
        require_configured_slots(observation, slot_config)
        remaining[row] = observation.germinations_remaining
        for col, report in enumerate(observation.slots):
            stage[row, col] = int(report.stage)
            if report.seed is not None:
                seed_age[row, col] = report.seed.age_epochs
                ramping[row, col] = report.seed.alpha.ramping
    return SlotStates(stage, seed_age, ramping, remaining)


@cache
def static_head_rows(topology: Topology) -> Mapping[ActionHead, BoolArray]:
    """One read-only mask row per head that does not depend on the env: everything allowed, except that the
    blueprint head never allows NOOP (a germination needs a real blueprint)."""
    sizes = head_sizes(SlotConfig.after_blocks(1), topology)  # these heads' sizes do not depend on the slots
    rows = {head: np.ones(sizes[head], dtype=np.bool_) for head in STATIC_HEADS}
    rows[ActionHead.BLUEPRINT][TOPOLOGY_BLUEPRINTS[topology].index(Blueprint.NOOP)] = False
    for row in rows.values():
        row.flags.writeable = False
    return MappingProxyType(rows)


def compute_mask_arrays(states: SlotStates, topology: Topology) -> MaskArrays:
    """Apply the rules of domain spec section 2 to a whole batch; raise on an all-false row."""
    stage = states.stage
    batch, num_slots = stage.shape
    slot_by_op = np.zeros((batch, len(LifecycleOp), num_slots), dtype=np.bool_)
    slot_by_op[:, LifecycleOp.WAIT, :] = True
    can_germinate = (states.germinations_remaining > 0) & ~_BLOCKS_GERMINATION[stage].any(axis=1)
    slot_by_op[:, LifecycleOp.GERMINATE, :] = _EMPTY[stage] & can_germinate[:, None]
    slot_by_op[:, LifecycleOp.ADVANCE, :] = _ADVANCEABLE[stage]
    slot_by_op[:, LifecycleOp.FOSSILIZE, :] = _FOSSILIZABLE[stage]
    slot_by_op[:, LifecycleOp.PRUNE, :] = _PRUNABLE[stage] & (states.seed_age >= MIN_PRUNE_AGE) & ~states.ramping
    slot_by_op[:, LifecycleOp.SET_ALPHA_TARGET, :] = _ALPHA_SETTABLE[stage] & ~states.ramping
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
    return compute_mask_arrays(collect_slot_states(observations, slot_config), topology)


def build_action_masks(
    observations: Sequence[EnvObservation],
    slot_config: SlotConfig,
    topology: Topology,
    device: torch.device | str = "cpu",
) -> ActionMasks:
    """Leyline ``ActionMasks`` of a batch, on ``device``."""
    return build_mask_arrays(observations, slot_config, topology).to_tensors(device)
