"""Action masks follow the legality rule of docs/design/legality.md exactly, for random valid slot states (stage
sets written out literally here, so a derivation error in the code cannot hide behind the same derivation in the
test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tamiyo_fixtures import SLOTS, observation, observations, seed, slot
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    ALPHA_SETTABLE_STAGES,
    GERMINATION_BLOCKING_STAGES,
    MIN_PRUNE_AGE,
    TOPOLOGY_BLUEPRINTS,
    ActionHead,
    AlphaMode,
    AlphaSnapshot,
    Blueprint,
    EnvObservation,
    InvalidStateMachineError,
    LifecycleOp,
    SeedStage,
    Topology,
    head_sizes,
)
from esper.tamiyo import build_action_masks, build_mask_arrays
from esper.tamiyo.encoding.masks import require_nonempty_rows

S = SeedStage
ADVANCE = {S.GERMINATED, S.TRAINING, S.BLENDING}
FOSSILIZE = {S.HOLDING}
PRUNE = {S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING}
SET_ALPHA = {S.BLENDING, S.HOLDING}
BLOCKS_GERMINATION = {S.GERMINATED, S.TRAINING, S.PRUNED, S.EMBARGOED, S.RESETTING}


def _expected_slot_mask(obs: EnvObservation, op: LifecycleOp) -> list[bool]:
    """The documented rule for one op, slot by slot."""
    can_germinate = obs.germinations_remaining > 0 and not any(r.stage in BLOCKS_GERMINATION for r in obs.slots)
    result = []
    for report in obs.slots:
        ramping = report.seed is not None and report.seed.alpha.mode is not AlphaMode.HOLD
        age = report.seed.age_epochs if report.seed is not None else 0
        allowed = {
            LifecycleOp.WAIT: True,
            LifecycleOp.GERMINATE: can_germinate and report.stage is S.DORMANT,
            LifecycleOp.ADVANCE: report.stage in ADVANCE,
            LifecycleOp.FOSSILIZE: report.stage in FOSSILIZE,
            LifecycleOp.PRUNE: report.stage in PRUNE and age >= MIN_PRUNE_AGE and not ramping,
            LifecycleOp.SET_ALPHA_TARGET: report.stage in SET_ALPHA and not ramping,
        }[op]
        result.append(allowed)
    return result


@settings(max_examples=80, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=3), st.sampled_from(Topology))
def test_masks_follow_every_rule(batch: list[EnvObservation], topology: Topology) -> None:
    masks = build_action_masks(batch, SLOTS, topology)
    sizes = head_sizes(SLOTS, topology)
    assert dict(masks.head_sizes) == sizes  # laid out for this action space
    assert masks.op.shape == (len(batch), len(LifecycleOp)) and masks.op.dtype == torch.bool
    assert masks.slot_by_op.shape == (len(batch), len(LifecycleOp), 3)
    for row, obs in enumerate(batch):
        for op in LifecycleOp:
            expected = _expected_slot_mask(obs, op)
            assert masks.slot_by_op[row, op].tolist() == expected, (op.name, obs)
            assert bool(masks.op[row, op]) == any(expected)
        assert bool(masks.op[row, LifecycleOp.WAIT])
    for head in (
        ActionHead.STYLE,
        ActionHead.TEMPO,
        ActionHead.ALPHA_TARGET,
        ActionHead.ALPHA_SPEED,
        ActionHead.ALPHA_CURVE,
    ):
        assert masks.heads[head].shape == (len(batch), sizes[head]) and bool(masks.heads[head].all())
    blueprint = masks.heads[ActionHead.BLUEPRINT]
    noop = TOPOLOGY_BLUEPRINTS[topology].index(Blueprint.NOOP)
    assert not blueprint[:, noop].any() and bool(np.delete(blueprint.numpy(), noop, axis=1).all())


def test_derived_stage_sets_match_the_spec() -> None:
    assert ALPHA_SETTABLE_STAGES == SET_ALPHA
    assert GERMINATION_BLOCKING_STAGES == BLOCKS_GERMINATION


def test_germination_needs_an_empty_slot_the_cap_and_no_developing_seed() -> None:
    open_slots = observation([slot(0, S.BLENDING), slot(1), slot(2, S.FOSSILIZED)])
    assert build_mask_arrays([open_slots], SLOTS, Topology.CNN).slot_by_op[0, LifecycleOp.GERMINATE].tolist() == [
        False,
        True,
        False,
    ]
    capped = observation([slot(0), slot(1), slot(2)], germinations_remaining=0)
    training = observation([slot(0, S.TRAINING), slot(1), slot(2)])
    cooling = observation([slot(0, S.RESETTING, dwell=1), slot(1), slot(2)])
    full = observation([slot(0, S.FOSSILIZED), slot(1, S.HOLDING), slot(2, S.BLENDING)])
    masks = build_mask_arrays([capped, training, cooling, full], SLOTS, Topology.CNN)
    assert not masks.op[:, LifecycleOp.GERMINATE].any()


def test_young_or_ramping_seeds_cannot_be_pruned_or_retargeted() -> None:
    young = slot(0, S.HOLDING, seed(age=MIN_PRUNE_AGE - 1))
    ramping = slot(1, S.BLENDING, seed(alpha=AlphaSnapshot(0.4, 1.0, AlphaMode.UP, 5, 2)))
    ready = slot(2, S.BLENDING, seed(age=MIN_PRUNE_AGE, alpha=AlphaSnapshot(0.7, 0.7)))
    masks = build_mask_arrays([observation([young, ramping, ready])], SLOTS, Topology.CNN)
    assert masks.slot_by_op[0, LifecycleOp.PRUNE].tolist() == [False, False, True]
    assert masks.slot_by_op[0, LifecycleOp.SET_ALPHA_TARGET].tolist() == [True, False, True]
    assert masks.slot_by_op[0, LifecycleOp.ADVANCE].tolist() == [False, True, True]  # the gate decides later
    assert masks.slot_by_op[0, LifecycleOp.FOSSILIZE].tolist() == [True, False, False]


def test_all_false_row_is_a_state_machine_error() -> None:
    with pytest.raises(InvalidStateMachineError, match=r"all-false op mask at batch rows \[1\]"):
        require_nonempty_rows(np.array([[True, False], [False, False]]), "op")


def test_masks_land_on_the_requested_device() -> None:
    masks = build_action_masks([observation()], SLOTS, Topology.CNN, device="cpu")
    assert masks.op.device.type == "cpu" and masks.heads[ActionHead.STYLE].is_contiguous()
