"""Random-valid and static controllers: valid, reproducible, uniform where they should be."""

from __future__ import annotations

from collections import Counter

import pytest
from _tamiyo_fixtures import SLOTS, observation, observations, seed, slot, varied_observations
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    ActionHead,
    AlphaSnapshot,
    EnvObservation,
    FactoredAction,
    InvalidStateMachineError,
    LifecycleOp,
    SeedStage,
    Topology,
    is_relevant,
)
from esper.tamiyo import RandomValidController, StaticController, build_mask_arrays
from esper.tamiyo.encoding.masks import STATIC_HEADS


@settings(max_examples=40, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=4), st.integers(0, 2**31 - 1), st.sampled_from(Topology))
def test_random_actions_are_valid_and_canonical(
    batch: list[EnvObservation], seed_value: int, topology: Topology
) -> None:
    controller = RandomValidController(SLOTS, topology, seed=seed_value)
    controller.start_episodes(len(batch))
    actions = controller.act(list(range(len(batch))), batch)
    masks = build_mask_arrays(batch, SLOTS, topology)
    for row, action in enumerate(actions):
        assert masks.slot_by_op[row, action.op, action.slot]
        indices = action.head_indices(topology)
        for head in STATIC_HEADS:
            if is_relevant(action.op, head):
                assert masks.heads[head][row, indices[head]]
        assert action == action.canonical()


def test_random_controller_is_reproducible_and_covers_every_valid_op() -> None:
    busy = observation(
        [slot(0, SeedStage.BLENDING, seed(alpha=AlphaSnapshot(0.7, 0.7))), slot(1, SeedStage.HOLDING), slot(2)]
    )

    def run(seed_value: int) -> list[FactoredAction]:
        controller = RandomValidController(SLOTS, seed=seed_value)
        controller.start_episodes(1)
        return [controller.act([0], [busy])[0] for _ in range(600)]

    first = run(5)
    assert first == run(5) and first != run(6)
    ops = Counter(action.op for action in first)
    assert set(ops) == set(LifecycleOp)
    assert all(abs(count / 600 - 1 / 6) < 0.06 for count in ops.values())  # uniform over valid ops
    germinations = [a for a in first if a.op is LifecycleOp.GERMINATE]
    assert {a.slot for a in germinations} == {2} and len({a.blueprint for a in germinations}) > 3


def test_static_controller_always_waits() -> None:
    controller = StaticController()
    controller.start_episodes(4)
    assert controller.act([3, 1, 0, 2], varied_observations()) == [FactoredAction.wait()] * 4
    assert controller.name == "static" and RandomValidController(SLOTS, seed=0).name == "random_valid"


def test_baselines_refuse_acting_before_start() -> None:
    for controller in (StaticController(), RandomValidController(SLOTS, seed=0)):
        with pytest.raises(InvalidStateMachineError, match="before start_episodes"):
            controller.act([0], [observation()])


def test_wait_targets_the_placeholder_slot() -> None:
    controller = RandomValidController(SLOTS, seed=1)
    controller.start_episodes(1)
    waits = [controller.act([0], [observation(germinations_remaining=0)])[0] for _ in range(50)]
    assert all(a == FactoredAction.wait() for a in waits)
    assert all(a.head_indices(Topology.CNN)[ActionHead.SLOT] == 0 for a in waits)
