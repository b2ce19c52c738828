"""Slot lifecycle: the transition table is enforced, failure paths take exactly embargo + reset ticks, fossils
are never pruned, and refused actions change nothing. Driven by random action sequences (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import one_thread  # noqa: F401  (autouse fixture)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from esper.kasmina import GateConfig, Seed, SeedSlot
from esper.leyline import (
    EMBARGO_EPOCHS,
    FAILURE_STAGES,
    MIN_PRUNE_AGE,
    RESET_EPOCHS,
    AlphaCurve,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    InvalidTransitionError,
    SeedStage,
    SlotId,
    SlotReport,
    Tempo,
    Topology,
    is_valid_transition,
)

GATES = GateConfig(min_training_epochs=2)


def _slot() -> SeedSlot:
    return SeedSlot(SlotId(0, 0), channels=2, gate_config=GATES)


def _seed(serial: int = 0, tempo: Tempo = Tempo.FAST, target: AlphaTarget = AlphaTarget.FULL) -> Seed:
    return Seed.create(
        topology=Topology.CNN,
        blueprint=Blueprint.NORM,
        channels=2,
        style=BlendStyle.LINEAR_ADD,
        tempo=tempo,
        alpha_target=target,
        generator=torch.Generator().manual_seed(serial),
        serial=serial,
    )


def _healthy_gradients(slot: SeedSlot) -> None:
    if slot.seed is not None:
        for parameter in slot.seed.parameters():
            parameter.grad = torch.full_like(parameter, 0.01)
        slot.seed.observe_gradients()


def _fingerprint(slot: SeedSlot) -> tuple[object, ...]:
    seed = slot.seed
    if seed is None:
        return (slot.stage, slot.dwell_remaining)
    return (
        slot.stage,
        slot.dwell_remaining,
        seed.age,
        seed.epochs_in_stage,
        tuple(seed.alpha.state().items()),
        seed.style,
        seed.metrics,
        seed.prune_pending,
        tuple(p.requires_grad for p in seed.parameters()),
    )


#: (kind, value, steps): value is a contribution or alpha target, steps a ramp length.
Action = tuple[str, float, int]

#: Ticks and advances are frequent so random sequences get far into the lifecycle.
TICK: Action = ("tick", 0.0, 0)
ACTIONS = st.one_of(
    st.just(TICK),
    st.just(TICK),
    st.sampled_from(["advance"] * 3 + ["gradients"] * 2 + ["germinate", "fossilize"]).map(lambda k: (k, 0.0, 0)),
    st.floats(-1.0, 5.0).map(lambda c: ("measure", c, 0)),
    st.sampled_from([0, 3, 5]).map(lambda n: ("prune", 0.0, n)),
    st.tuples(st.sampled_from([0.5, 0.7, 1.0]), st.sampled_from([0, 3])).map(lambda a: ("alpha", a[0], a[1])),
)

#: The fastest honest path to a fossil (FAST tempo); sequences start with a random-length prefix of it.
HONEST_PATH: list[Action] = [
    ("germinate", 0.0, 0),
    ("advance", 0.0, 0),
    *[TICK] * GATES.min_training_epochs,
    ("gradients", 0.0, 0),
    ("advance", 0.0, 0),
    *[TICK] * 3,
    ("advance", 0.0, 0),
    ("measure", 3.0, 0),
    ("fossilize", 0.0, 0),
]


def _apply(slot: SeedSlot, action: Action, serial: int) -> bool | None:
    """Run one action; returns the action's success (None for ticks and measurements)."""
    kind, value, steps = action
    if kind == "tick":
        slot.tick()
        return None
    if kind == "gradients":
        _healthy_gradients(slot)
        return None
    if kind == "measure":
        if slot.seed is not None:
            slot.seed.record_contribution(value)
        return None
    if kind == "germinate":
        return slot.germinate(_seed(serial), 30.0).success
    if kind == "advance":
        return slot.advance(31.0).success
    if kind == "fossilize":
        return slot.fossilize(32.0).success
    if kind == "prune":
        return slot.prune(steps, AlphaCurve.LINEAR).success
    return slot.set_alpha_target(value, steps, AlphaCurve.COSINE, BlendStyle.GATED_GATE, 33.0).success


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(range(len(HONEST_PATH) + 1)), st.lists(ACTIONS, min_size=1, max_size=60))
def test_random_action_sequences_respect_the_lifecycle(prefix: int, random_actions: list[Action]) -> None:
    actions = HONEST_PATH[:prefix] + random_actions
    slot = _slot()
    ticks_since_prune: int | None = None
    for serial, action in enumerate(actions):
        before = slot.stage
        fingerprint = _fingerprint(slot)
        success = _apply(slot, action, serial)
        after = slot.stage
        event(f"reached {after.name}")  # coverage, shown by --hypothesis-show-statistics
        # Stages only move along the table (the tick that ends a scheduled prune passes through PRUNED).
        through_prune = is_valid_transition(before, SeedStage.PRUNED) and after is SeedStage.EMBARGOED
        assert after == before or is_valid_transition(before, after) or through_prune, (before, after, action)
        # A refused action changes nothing.
        if success is False:
            assert _fingerprint(slot) == fingerprint, action
        # Fossils are never pruned and never leave.
        if before is SeedStage.FOSSILIZED:
            assert after is SeedStage.FOSSILIZED
        # The seed exists exactly in the seed-bearing stages.
        assert (slot.seed is None) == (after in FAILURE_STAGES or after is SeedStage.DORMANT)
        # Failure paths: observed EMBARGOED then RESETTING for exactly EMBARGO_EPOCHS + RESET_EPOCHS ticks after
        # any prune, then empty (a scheduled prune's last ramp tick is the first of them).
        if after is SeedStage.PRUNED and before is not SeedStage.PRUNED:
            ticks_since_prune = 0
        elif through_prune:
            ticks_since_prune = 1
        elif ticks_since_prune is not None and action[0] == "tick":
            ticks_since_prune += 1
            if ticks_since_prune <= EMBARGO_EPOCHS + RESET_EPOCHS:
                assert after in FAILURE_STAGES
            else:
                assert after is SeedStage.DORMANT
                ticks_since_prune = None
        # During the cooldown the slot refuses everything but the passing of time.
        if before in FAILURE_STAGES and action[0] in {"germinate", "advance", "fossilize", "alpha", "prune"}:
            assert success is False, action


@settings(max_examples=25, deadline=None)
@given(age=st.integers(MIN_PRUNE_AGE, 12), noise=st.lists(st.sampled_from(["germinate", "advance"]), max_size=8))
def test_a_pruned_slot_is_empty_after_exactly_embargo_plus_reset_ticks(age: int, noise: list[str]) -> None:
    slot = _slot()
    assert slot.germinate(_seed(), 10.0).success
    for _ in range(age):
        slot.tick()
    assert slot.prune(0, AlphaCurve.LINEAR).success
    assert slot.stage is SeedStage.PRUNED
    stages = []
    for epoch in range(EMBARGO_EPOCHS + RESET_EPOCHS + 1):
        for action in noise:  # germination and advance are refused throughout the cooldown
            assert not _apply(slot, (action, 0.0, 0), epoch)
        slot.tick()
        stages.append(slot.stage)
    # The cooldown of docs/design/lifecycle.md: 5 epochs observed EMBARGOED, 1 RESETTING, then an empty slot.
    assert stages == [SeedStage.EMBARGOED] * 5 + [SeedStage.RESETTING] * 1 + [SeedStage.DORMANT]
    assert slot.germinate(_seed(1), 10.0).success


def test_dwell_remaining_counts_down_through_the_cooldown() -> None:
    slot = _slot()
    slot.germinate(_seed(), 10.0)
    for _ in range(MIN_PRUNE_AGE):
        slot.tick()
    slot.prune(0, AlphaCurve.LINEAR)
    seen = [(slot.report().stage, slot.report().dwell_remaining)]
    for _ in range(EMBARGO_EPOCHS + RESET_EPOCHS + 1):
        slot.tick()
        seen.append((slot.report().stage, slot.report().dwell_remaining))
    assert seen == [
        (SeedStage.PRUNED, 0),
        (SeedStage.EMBARGOED, 5),
        (SeedStage.EMBARGOED, 4),
        (SeedStage.EMBARGOED, 3),
        (SeedStage.EMBARGOED, 2),
        (SeedStage.EMBARGOED, 1),
        (SeedStage.RESETTING, 1),
        (SeedStage.DORMANT, 0),
    ]


def test_prune_needs_min_age() -> None:
    slot = _slot()
    slot.germinate(_seed(), 10.0)
    for _ in range(MIN_PRUNE_AGE - 1):
        slot.tick()
    result = slot.prune(0, AlphaCurve.LINEAR)
    assert not result.success and "MIN_PRUNE_AGE" in result.reason
    slot.tick()
    assert slot.prune(0, AlphaCurve.LINEAR).success


def _blended_slot(tempo: Tempo = Tempo.FAST) -> SeedSlot:
    slot = _slot()
    slot.germinate(_seed(tempo=tempo), 10.0)
    slot.advance(10.0)
    for _ in range(GATES.min_training_epochs):
        slot.tick()
    _healthy_gradients(slot)
    assert slot.advance(10.0).success
    return slot


def test_scheduled_prune_ramps_down_frozen_and_completes_on_the_last_tick() -> None:
    slot = _blended_slot()
    while slot.require_seed().alpha.ramping:
        slot.tick()
    seed = slot.require_seed()
    assert seed.alpha.value == 1.0
    assert slot.prune(3, AlphaCurve.LINEAR).success
    assert all(not p.requires_grad for p in seed.parameters())
    assert not slot.prune(0, AlphaCurve.LINEAR).success  # alpha is ramping
    values = []
    for _ in range(2):
        slot.tick()
        values.append(seed.alpha.value)
        assert slot.stage is SeedStage.BLENDING
    slot.tick()
    assert values == pytest.approx([2 / 3, 1 / 3])
    # The ramp's last tick completes the prune and is already the first embargo epoch (PRUNED is not observed).
    assert slot.report() == SlotReport(slot.slot_id, SeedStage.EMBARGOED, None, EMBARGO_EPOCHS)
    stages = [slot.stage]
    for _ in range(EMBARGO_EPOCHS + RESET_EPOCHS):
        slot.tick()
        stages.append(slot.stage)
    assert stages == [SeedStage.EMBARGOED] * 5 + [SeedStage.RESETTING] * 1 + [SeedStage.DORMANT]


def test_a_down_ramp_without_prune_restores_requires_grad_exactly() -> None:
    slot = _blended_slot()
    while slot.require_seed().alpha.ramping:
        slot.tick()
    seed = slot.require_seed()
    seed.gate.proj.weight.requires_grad_(False)  # a user's own freeze must survive the ramp
    flags = [p.requires_grad for p in seed.parameters()]
    assert slot.set_alpha_target(0.5, 3, AlphaCurve.LINEAR, BlendStyle.LINEAR_ADD, 10.0).success
    assert not any(p.requires_grad for p in seed.parameters())
    for _ in range(3):
        slot.tick()
    assert seed.alpha.value == 0.5
    assert [p.requires_grad for p in seed.parameters()] == flags
    assert slot.stage is SeedStage.BLENDING


def test_holding_does_nothing_by_itself() -> None:
    slot = _blended_slot()
    while slot.require_seed().alpha.ramping:
        slot.tick()
    assert slot.advance(10.0).success
    slot.require_seed().record_contribution(10.0)
    for _ in range(50):
        slot.tick()
    assert slot.stage is SeedStage.HOLDING


def test_a_target_below_one_in_holding_goes_back_to_blending() -> None:
    slot = _blended_slot()
    while slot.require_seed().alpha.ramping:
        slot.tick()
    assert slot.advance(20.0).success
    assert slot.set_alpha_target(0.7, 0, AlphaCurve.LINEAR, BlendStyle.LINEAR_MULTIPLY, 25.0).success
    seed = slot.require_seed()
    assert slot.stage is SeedStage.BLENDING
    assert seed.alpha.value == 0.7
    assert seed.style is BlendStyle.LINEAR_MULTIPLY
    assert seed.metrics.accuracy_at_stage_entry == 25.0


def test_fossils_refuse_prune_and_retarget() -> None:
    slot = _blended_slot()
    while slot.require_seed().alpha.ramping:
        slot.tick()
    slot.advance(10.0)
    slot.require_seed().record_contribution(3.0)
    assert slot.fossilize(10.0).success
    for _ in range(MIN_PRUNE_AGE):
        slot.tick()
    assert not slot.prune(0, AlphaCurve.LINEAR).success
    assert not slot.set_alpha_target(0.5, 0, AlphaCurve.LINEAR, BlendStyle.LINEAR_ADD, 10.0).success
    assert slot.stage is SeedStage.FOSSILIZED


def test_an_invalid_transition_names_both_stages() -> None:
    slot = _slot()
    with pytest.raises(InvalidTransitionError, match="DORMANT -> FOSSILIZED"):
        slot._move_to(SeedStage.FOSSILIZED)


def test_germinating_a_busy_slot_is_refused() -> None:
    slot = _slot()
    assert slot.germinate(_seed(0), 10.0).success
    result = slot.germinate(_seed(1), 10.0)
    assert not result.success and "busy" in result.reason
    assert slot.require_seed().serial == 0


def test_one_tick_moves_every_counter_once() -> None:
    slot = _blended_slot(Tempo.STANDARD)
    seed = slot.require_seed()
    seed.record_contribution(1.0)
    age, in_stage, steps = seed.age, seed.epochs_in_stage, seed.alpha.steps_done
    slot.tick()
    assert (seed.age, seed.epochs_in_stage, seed.alpha.steps_done) == (age + 1, in_stage + 1, steps + 1)
    assert seed.metrics.epochs_since_measurement == 1
