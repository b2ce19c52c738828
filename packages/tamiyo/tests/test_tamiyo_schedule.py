"""The fixed schedule: germinate, advance and fossilize whenever the masks allow, never prune, and never starve a
seed behind one its gate keeps refusing."""

from __future__ import annotations

import pytest
from _tamiyo_fixtures import SLOTS, observation, observations, seed, slot
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    TOPOLOGY_BLUEPRINTS,
    AlphaSnapshot,
    Blueprint,
    ConfigError,
    Controller,
    EnvObservation,
    FactoredAction,
    LastAction,
    LifecycleOp,
    SeedStage,
    Tempo,
    Topology,
)
from esper.tamiyo import ScheduleController, build_mask_arrays


def _act(controller: ScheduleController, obs: EnvObservation) -> FactoredAction:
    controller.start_episodes(1)
    return controller.act([0], [obs])[0]


def test_schedule_is_a_controller_named_after_its_blueprint() -> None:
    controller = ScheduleController(SLOTS, Topology.CNN, Blueprint.CONV_HEAVY)
    assert isinstance(controller, Controller)
    assert controller.name == "schedule:conv_heavy"


@pytest.mark.parametrize(("blueprint", "topology"), [(Blueprint.NOOP, Topology.CNN), (Blueprint.LORA, Topology.CNN)])
def test_schedule_refuses_a_blueprint_the_topology_cannot_germinate(blueprint: Blueprint, topology: Topology) -> None:
    with pytest.raises(ConfigError, match="fixed schedule"):
        ScheduleController(SLOTS, topology, blueprint)


def test_schedule_germinates_its_blueprint_in_the_first_empty_slot() -> None:
    controller = ScheduleController(SLOTS, Topology.CNN, Blueprint.BOTTLENECK, tempo=Tempo.FAST)
    action = _act(controller, observation())
    assert action == FactoredAction.germinate(0, Blueprint.BOTTLENECK, tempo=Tempo.FAST)


def test_schedule_advances_a_developing_seed_before_anything_else() -> None:
    controller = ScheduleController(SLOTS, Topology.CNN, Blueprint.CONV_LIGHT)
    obs = observation([slot(0, SeedStage.TRAINING), slot(1), slot(2)])
    assert _act(controller, obs) == FactoredAction.advance(0)


def test_schedule_fossilizes_a_holding_seed_and_never_prunes() -> None:
    controller = ScheduleController(SLOTS, Topology.CNN, Blueprint.CONV_LIGHT)
    obs = observation([slot(0, SeedStage.HOLDING), slot(1), slot(2)])
    assert _act(controller, obs) == FactoredAction.fossilize(0)


def test_after_a_refused_advance_the_schedule_germinates_and_then_retries() -> None:
    """A BLENDING seed still ramping is refused by its gate; the empty slot must not wait for it."""
    controller = ScheduleController(SLOTS, Topology.CNN, Blueprint.CONV_LIGHT)
    controller.start_episodes(1)
    blending = slot(0, SeedStage.BLENDING, seed(alpha=AlphaSnapshot(0.4, 1.0)))
    first = controller.act([0], [observation([blending, slot(1), slot(2)])])[0]
    assert first == FactoredAction.advance(0)
    refused = observation([blending, slot(1), slot(2)], last_action=LastAction(LifecycleOp.ADVANCE, 0, False))
    assert controller.act([0], [refused])[0] == FactoredAction.germinate(1, Blueprint.CONV_LIGHT)
    germinated = observation(
        [blending, slot(1, SeedStage.GERMINATED), slot(2)], last_action=LastAction(LifecycleOp.GERMINATE, 1, True)
    )
    assert controller.act([0], [germinated])[0] == FactoredAction.advance(0)


def test_schedule_waits_when_nothing_is_legal() -> None:
    controller = ScheduleController(SLOTS, Topology.CNN, Blueprint.CONV_LIGHT)
    fossils = [slot(index, SeedStage.FOSSILIZED) for index in range(3)]
    assert _act(controller, observation(fossils)) == FactoredAction.wait()


@settings(max_examples=60, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=4), st.sampled_from(Topology), st.data())
def test_schedule_actions_are_legal_and_never_prune(
    batch: list[EnvObservation], topology: Topology, data: st.DataObject
) -> None:
    blueprint = data.draw(st.sampled_from(TOPOLOGY_BLUEPRINTS[topology][1:]))
    controller = ScheduleController(SLOTS, topology, blueprint)
    controller.start_episodes(len(batch))
    actions = controller.act(list(range(len(batch))), batch)
    masks = build_mask_arrays(batch, SLOTS, topology)
    for row, action in enumerate(actions):
        assert masks.slot_by_op[row, action.op, action.slot]
        assert action.op not in (LifecycleOp.PRUNE, LifecycleOp.SET_ALPHA_TARGET)
        assert action == action.canonical()
        if action.op is LifecycleOp.GERMINATE:
            assert action.blueprint is blueprint
