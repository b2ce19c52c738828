"""Which lifecycle action is legal in which slot state: the one rule that masks and executors share.

Legality means physical possibility only (timing is learned from reward, and a gate may still refuse a legal
ADVANCE or FOSSILIZE when it is executed). Kasmina's slots and model refuse what these functions forbid, simic's
environment adds the seed cap through the same functions, and tamiyo turns ``legal_slots_by_op`` into mask
tensors, so a controller that ignores the masks can never do what they forbid. Every stage set comes from the
transition table, directly or derived below.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

from esper.leyline.actions import LifecycleOp
from esper.leyline.blueprints import TOPOLOGY_BLUEPRINTS, Blueprint, Topology
from esper.leyline.constants import MIN_PRUNE_AGE
from esper.leyline.reports import SlotReport
from esper.leyline.stages import (
    ADVANCEABLE_STAGES,
    FAILURE_STAGES,
    FOSSILIZABLE_STAGES,
    LIVE_STAGES,
    PRUNABLE_STAGES,
    VALID_TRANSITIONS,
    SeedStage,
)

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


class SlotCondition(NamedTuple):
    """What legality reads about one slot: its stage, whether its seed is old enough to prune
    (age >= ``MIN_PRUNE_AGE``) and whether its alpha is ramping (both False without a seed)."""

    stage: SeedStage
    prune_age_reached: bool = False
    ramping: bool = False

    @classmethod
    def of(cls, report: SlotReport) -> SlotCondition:
        seed = report.seed
        if seed is None:
            return cls(report.stage)
        return cls(report.stage, seed.age_epochs >= MIN_PRUNE_AGE, seed.alpha.ramping)

    @classmethod
    def of_seed(cls, stage: SeedStage, age_epochs: int, ramping: bool) -> SlotCondition:
        return cls(stage, age_epochs >= MIN_PRUNE_AGE, ramping)


def slot_refusal(op: LifecycleOp, condition: SlotCondition) -> str | None:
    """Why ``op`` is illegal in a slot judged on its own, or None when it is legal there."""
    stage = condition.stage
    if op is LifecycleOp.WAIT:
        return None
    if op is LifecycleOp.GERMINATE:
        return None if stage is SeedStage.DORMANT else f"the slot is busy ({stage.name})"
    if op is LifecycleOp.ADVANCE:
        return None if stage in ADVANCEABLE_STAGES else f"{stage.name} cannot ADVANCE"
    if op is LifecycleOp.FOSSILIZE:
        return None if stage in FOSSILIZABLE_STAGES else f"{stage.name} cannot FOSSILIZE"
    if op is LifecycleOp.PRUNE:
        if stage not in PRUNABLE_STAGES:
            return f"{stage.name} cannot be pruned"
        if not condition.prune_age_reached:
            return f"the seed is younger than MIN_PRUNE_AGE {MIN_PRUNE_AGE}"
        return "alpha is ramping" if condition.ramping else None
    if stage not in ALPHA_SETTABLE_STAGES:
        return f"{stage.name} cannot SET_ALPHA_TARGET"
    return "alpha is ramping; retarget only in HOLD" if condition.ramping else None


def lifecycle_refusal(op: LifecycleOp, slot: int, conditions: Sequence[SlotCondition]) -> str | None:
    """Why ``op`` on slot index ``slot`` is illegal given every slot of the model, or None: the slot's own rule
    plus "seeds develop one at a time" (no germination while any slot is in a germination-blocking stage)."""
    if op is LifecycleOp.WAIT:
        return None
    own = slot_refusal(op, conditions[slot])
    if own is not None:
        return own
    if op is LifecycleOp.GERMINATE:
        for index, condition in enumerate(conditions):
            if condition.stage in GERMINATION_BLOCKING_STAGES:
                return f"slot index {index} is {condition.stage.name}: seeds develop one at a time"
    return None


def refusal(op: LifecycleOp, slot: int, conditions: Sequence[SlotCondition], germinations_remaining: int) -> str | None:
    """``lifecycle_refusal`` plus the episode's seed cap: the whole rule an environment enforces."""
    if op is LifecycleOp.GERMINATE and germinations_remaining <= 0:
        return "the seed cap is reached"
    return lifecycle_refusal(op, slot, conditions)


@cache
def legal_slots_by_op(conditions: tuple[SlotCondition, ...], can_germinate: bool) -> tuple[tuple[bool, ...], ...]:
    """``[op][slot]`` True where ``refusal`` allows the op (``can_germinate``: germinations remain). Cached:
    a model has few distinct slot states, so building a batch's masks is a lookup per env."""
    remaining = 1 if can_germinate else 0
    return tuple(
        tuple(refusal(op, slot, conditions, remaining) is None for slot in range(len(conditions))) for op in LifecycleOp
    )


def blueprint_refusal(blueprint: Blueprint, topology: Topology) -> str | None:
    """Why ``blueprint`` cannot be germinated in a ``topology`` model, or None (NOOP is never a seed)."""
    if blueprint is Blueprint.NOOP:
        return "GERMINATE needs a real blueprint, not NOOP"
    if blueprint not in TOPOLOGY_BLUEPRINTS[topology]:
        return f"blueprint {blueprint.registry_name} is not a {topology.value} blueprint"
    return None


@cache
def legal_blueprints(topology: Topology) -> tuple[bool, ...]:
    """One flag per entry of the topology's blueprint head: True where a germination may use it."""
    return tuple(blueprint_refusal(blueprint, topology) is None for blueprint in TOPOLOGY_BLUEPRINTS[topology])
