"""The transition table and every stage set derived from it."""

from __future__ import annotations

from esper.leyline import (
    ADVANCE_TARGETS,
    ADVANCEABLE_STAGES,
    FAILURE_DWELL_EPOCHS,
    FAILURE_PATH,
    FAILURE_STAGES,
    FOSSILIZABLE_STAGES,
    LIVE_STAGES,
    PRUNABLE_STAGES,
    SEED_BEARING_STAGES,
    TERMINAL_STAGES,
    VALID_TRANSITIONS,
    SeedStage,
    is_valid_transition,
)

S = SeedStage


def test_stage_values_are_the_stable_contract() -> None:
    assert [(s.name, s.value) for s in SeedStage] == [
        ("DORMANT", 0),
        ("GERMINATED", 1),
        ("TRAINING", 2),
        ("BLENDING", 3),
        ("HOLDING", 4),
        ("FOSSILIZED", 5),
        ("PRUNED", 6),
        ("EMBARGOED", 7),
        ("RESETTING", 8),
    ]


def test_table_covers_every_stage_and_matches_the_spec() -> None:
    assert set(VALID_TRANSITIONS) == set(SeedStage)
    assert VALID_TRANSITIONS[S.HOLDING] == {S.FOSSILIZED, S.BLENDING, S.PRUNED}
    assert VALID_TRANSITIONS[S.DORMANT] == {S.GERMINATED}
    assert is_valid_transition(S.TRAINING, S.BLENDING)
    assert not is_valid_transition(S.TRAINING, S.HOLDING)
    assert not is_valid_transition(S.FOSSILIZED, S.PRUNED)


def test_fossilized_is_the_only_terminal_stage() -> None:
    assert TERMINAL_STAGES == {S.FOSSILIZED}
    assert VALID_TRANSITIONS[S.FOSSILIZED] == frozenset()


def test_every_failure_path_leads_back_to_an_empty_slot() -> None:
    assert FAILURE_PATH == (S.PRUNED, S.EMBARGOED, S.RESETTING)
    for stage in FAILURE_STAGES:
        seen = {stage}
        current = stage
        while current is not S.DORMANT:
            (current,) = VALID_TRANSITIONS[current]
            assert current not in seen, "failure path loops"
            seen.add(current)
    # and every prunable stage enters that path
    for stage in PRUNABLE_STAGES:
        assert S.PRUNED in VALID_TRANSITIONS[stage]


def test_failure_dwell_adds_up_to_embargo_plus_reset() -> None:
    assert set(FAILURE_DWELL_EPOCHS) == FAILURE_STAGES
    assert FAILURE_DWELL_EPOCHS[S.PRUNED] == 0
    assert sum(FAILURE_DWELL_EPOCHS.values()) == 6


def test_derived_sets_match_the_table() -> None:
    assert PRUNABLE_STAGES == {s for s in SeedStage if S.PRUNED in VALID_TRANSITIONS[s]}
    assert PRUNABLE_STAGES == {S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING}
    assert FOSSILIZABLE_STAGES == {S.HOLDING}
    assert LIVE_STAGES == {S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING}
    assert dict(ADVANCE_TARGETS) == {S.GERMINATED: S.TRAINING, S.TRAINING: S.BLENDING, S.BLENDING: S.HOLDING}
    assert ADVANCEABLE_STAGES == {S.GERMINATED, S.TRAINING, S.BLENDING}
    assert SEED_BEARING_STAGES == LIVE_STAGES | {S.FOSSILIZED}
    for source, target in ADVANCE_TARGETS.items():
        assert is_valid_transition(source, target)
    assert not (FAILURE_STAGES & SEED_BEARING_STAGES)
