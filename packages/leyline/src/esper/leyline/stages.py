"""Seed lifecycle stages and the one transition table every other stage set is derived from."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType


class SeedStage(IntEnum):
    """Lifecycle stage of a slot. The integer values are stored in checkpoints and observations: never renumber."""

    DORMANT = 0
    GERMINATED = 1
    TRAINING = 2
    BLENDING = 3
    HOLDING = 4
    FOSSILIZED = 5
    PRUNED = 6
    EMBARGOED = 7
    RESETTING = 8


_S = SeedStage

#: The single source of truth for the lifecycle. DORMANT means "slot empty".
VALID_TRANSITIONS: Mapping[SeedStage, frozenset[SeedStage]] = MappingProxyType(
    {
        _S.DORMANT: frozenset({_S.GERMINATED}),
        _S.GERMINATED: frozenset({_S.TRAINING, _S.PRUNED}),
        _S.TRAINING: frozenset({_S.BLENDING, _S.PRUNED}),
        _S.BLENDING: frozenset({_S.HOLDING, _S.PRUNED}),
        _S.HOLDING: frozenset({_S.FOSSILIZED, _S.BLENDING, _S.PRUNED}),
        _S.FOSSILIZED: frozenset(),
        _S.PRUNED: frozenset({_S.EMBARGOED}),
        _S.EMBARGOED: frozenset({_S.RESETTING}),
        _S.RESETTING: frozenset({_S.DORMANT}),
    }
)


def is_valid_transition(source: SeedStage, target: SeedStage) -> bool:
    """True when the table allows ``source -> target``."""
    return target in VALID_TRANSITIONS[source]


def _failure_path() -> tuple[SeedStage, ...]:
    """Walk from PRUNED along the (single) successor until the slot is DORMANT again."""
    path: list[SeedStage] = []
    stage = SeedStage.PRUNED
    while stage is not SeedStage.DORMANT:
        path.append(stage)
        (stage,) = VALID_TRANSITIONS[stage]
    return tuple(path)


#: Stages with no way out: a fossil is kept for good.
TERMINAL_STAGES: frozenset[SeedStage] = frozenset(s for s, nxt in VALID_TRANSITIONS.items() if not nxt)

#: PRUNED and the cooldown after it, in order. The slot forward is the identity and germination is refused.
FAILURE_PATH: tuple[SeedStage, ...] = _failure_path()
FAILURE_STAGES: frozenset[SeedStage] = frozenset(FAILURE_PATH)

#: Stages a PRUNE may leave.
PRUNABLE_STAGES: frozenset[SeedStage] = frozenset(s for s, nxt in VALID_TRANSITIONS.items() if SeedStage.PRUNED in nxt)

#: Stages a FOSSILIZE may leave.
FOSSILIZABLE_STAGES: frozenset[SeedStage] = frozenset(
    s for s, nxt in VALID_TRANSITIONS.items() if SeedStage.FOSSILIZED in nxt
)

#: Stages where a seed module is alive and still developing (neither empty, failed, nor terminal).
LIVE_STAGES: frozenset[SeedStage] = frozenset(
    s for s in SeedStage if s is not SeedStage.DORMANT and s not in FAILURE_STAGES and s not in TERMINAL_STAGES
)

#: Where ADVANCE moves a live seed: its successor that is live and later in the lifecycle.
#: (HOLDING -> BLENDING is a step back, taken by SET_ALPHA_TARGET, not by ADVANCE.)
ADVANCE_TARGETS: Mapping[SeedStage, SeedStage] = MappingProxyType(
    {
        source: target
        for source in sorted(LIVE_STAGES)
        for target in VALID_TRANSITIONS[source]
        if target in LIVE_STAGES and target > source
    }
)
ADVANCEABLE_STAGES: frozenset[SeedStage] = frozenset(ADVANCE_TARGETS)

#: Stages in which a seed module exists (it may be evaluated, counted and checkpointed).
SEED_BEARING_STAGES: frozenset[SeedStage] = LIVE_STAGES | TERMINAL_STAGES
