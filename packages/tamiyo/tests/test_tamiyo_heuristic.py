"""Heuristic controller scenarios: stabilization, plateau, embargo, penalties, fossilize/prune, ransomware,
accuracy drops, priorities across slots, and only mask-allowed actions."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from _tamiyo_fixtures import SLOTS, observation, observations, seed, slot
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    AlphaMode,
    AlphaSnapshot,
    AlphaTarget,
    Blueprint,
    ConfigError,
    EnvObservation,
    FactoredAction,
    InvalidStateMachineError,
    LifecycleOp,
    SeedMetrics,
    SeedStage,
    SlotReport,
    Topology,
)
from esper.tamiyo import Decision, DecisionReason, HeuristicConfig, HeuristicController, build_mask_arrays

S = SeedStage


def _controller(config: HeuristicConfig | None = None) -> HeuristicController:
    controller = HeuristicController(SLOTS, config=config)
    controller.start_episodes(1)
    return controller


def _act(controller: HeuristicController, obs: EnvObservation) -> FactoredAction:
    (action,) = controller.act([0], [obs])
    return action


def _stable_epochs(
    controller: HeuristicController, epochs: Sequence[int], slots: Sequence[SlotReport] | None = None
) -> list[FactoredAction]:
    """Epochs with a flat, stable loss (-1 % per epoch) and a flat accuracy (a plateau)."""
    return [_act(controller, observation(slots, epoch=e, val_loss=1.0 * 0.99**e, val_accuracy=40.0)) for e in epochs]


def test_waits_for_epoch_five_then_germinates_the_first_blueprint() -> None:
    controller = _controller()
    actions = _stable_epochs(controller, range(6))
    assert [a.op for a in actions[:5]] == [LifecycleOp.WAIT] * 5
    assert actions[5] == FactoredAction.germinate(0, Blueprint.CONV_LIGHT)
    state = controller.env_state(0)
    assert state.signals.stabilized and state.rotation_index == 1
    assert state.last_decision is not None and state.last_decision.reason is DecisionReason.GERMINATE_ON_PLATEAU


def test_no_germination_before_the_host_stabilizes() -> None:
    controller = _controller()
    falling = [_act(controller, observation(epoch=e, val_loss=0.8**e, val_accuracy=40.0)) for e in range(10)]
    assert all(a.op is LifecycleOp.WAIT for a in falling)  # -20 % per epoch is still learning
    assert not controller.env_state(0).signals.stabilized
    stable = [
        _act(controller, observation(epoch=e, val_loss=0.8**9 * 0.99 ** (e - 9), val_accuracy=40.0))
        for e in range(10, 13)
    ]
    assert [a.op for a in stable] == [LifecycleOp.WAIT, LifecycleOp.WAIT, LifecycleOp.GERMINATE]


def test_no_germination_without_a_plateau() -> None:
    controller = _controller()
    climbing = [_act(controller, observation(epoch=e, val_loss=0.99**e, val_accuracy=30.0 + e)) for e in range(12)]
    assert all(a.op is LifecycleOp.WAIT for a in climbing)


def test_no_germination_within_five_epochs_of_a_prune() -> None:
    controller = _controller()
    _stable_epochs(controller, range(5), [slot(0, S.FOSSILIZED), slot(1, S.BLENDING), slot(2)])  # ready, but blocked
    pruned = [slot(0, S.HOLDING, seed(metrics=SeedMetrics(contribution=0.0))), slot(1), slot(2)]
    assert _act(controller, observation(pruned, epoch=5, val_loss=0.99**5, val_accuracy=40.0)).op is LifecycleOp.PRUNE
    assert controller.env_state(0).last_prune_epoch == 5 and controller.env_state(0).embargo_remaining == 5
    # The slot is reported empty at once here, so only the heuristic's own embargo holds germination back.
    later = _stable_epochs(controller, range(6, 12))
    assert [a.op for a in later] == [LifecycleOp.WAIT] * 4 + [LifecycleOp.GERMINATE] * 2
    assert controller.env_state(0).embargo_remaining == 0


def test_prune_penalties_decay_per_epoch_and_are_exposed() -> None:
    controller = _controller()
    doomed = [
        slot(0, S.HOLDING, seed(blueprint=Blueprint.ATTENTION, metrics=SeedMetrics(contribution=-1.0))),
        slot(1),
        slot(2),
    ]
    _act(controller, observation(doomed, epoch=20))
    penalties = []
    for epoch in range(21, 26):
        _act(controller, observation(epoch=epoch))
        penalties.append(dict(controller.env_state(0).blueprint_penalties))
    assert controller.env_state(0).last_decision is not None
    assert penalties == [
        {Blueprint.ATTENTION: 1.0},
        {Blueprint.ATTENTION: 0.5},
        {Blueprint.ATTENTION: 0.25},
        {Blueprint.ATTENTION: 0.125},
        {},  # 0.0625 < 0.1: dropped
    ]


def test_penalized_blueprints_are_skipped_in_the_rotation() -> None:
    """With the default penalty settings a penalty decays below 3 before the 5-epoch embargo ends; slower decay and no
    embargo make the skip observable."""
    controller = _controller(HeuristicConfig(penalty_decay=0.95, prune_embargo_epochs=0, min_germinate_epoch=0))
    for epoch, blueprint in ((0, Blueprint.CONV_LIGHT), (1, Blueprint.CONV_LIGHT)):
        doomed = [
            slot(0, S.HOLDING, seed(blueprint=blueprint, metrics=SeedMetrics(contribution=0.0))),
            slot(1),
            slot(2),
        ]
        assert (
            _act(controller, observation(doomed, epoch=epoch, val_loss=0.99**epoch, val_accuracy=40.0)).op
            is LifecycleOp.PRUNE
        )
    assert controller.env_state(0).blueprint_penalties[Blueprint.CONV_LIGHT] == pytest.approx(3.9)
    actions = _stable_epochs(controller, range(2, 6))
    germination = next(a for a in actions if a.op is LifecycleOp.GERMINATE)
    assert germination.blueprint is Blueprint.CONV_HEAVY  # conv_light (penalty >= 3) is skipped


def test_holding_waits_for_a_counterfactual_then_fossilizes_or_prunes() -> None:
    def holding(contribution: float | None, age: int = 10) -> EnvObservation:
        report = seed(metrics=SeedMetrics(contribution=contribution), age=age, alpha=AlphaSnapshot(1.0, 1.0))
        return observation([slot(0, S.HOLDING, report), slot(1), slot(2)], epoch=2)

    controller = _controller()
    assert _act(controller, holding(None)).op is LifecycleOp.WAIT
    assert _act(controller, holding(0.6)) == FactoredAction.fossilize(0)
    assert _act(controller, holding(0.5)) == FactoredAction.prune(0)  # fossilizing needs strictly more than 0.5 pp
    assert _act(controller, holding(-2.0, age=3)).op is LifecycleOp.WAIT  # too young to prune: the mask forbids it


def test_ransomware_is_pruned_only_after_its_minimum_age() -> None:
    def ransom(age: int) -> EnvObservation:
        metrics = SeedMetrics(contribution=1.0, accuracy_at_germination=60.0, accuracy_at_stage_entry=56.0)
        report = seed(age=age, metrics=metrics, alpha=AlphaSnapshot(1.0, 1.0))
        return observation([slot(0, S.BLENDING, report), slot(1), slot(2)], val_accuracy=55.0, epoch=2)

    old = _controller()
    assert _act(old, ransom(12)) == FactoredAction.prune(0)
    assert old.env_state(0).last_decision == Decision(DecisionReason.PRUNE_RANSOMWARE, slot=0)
    young = _controller()
    assert _act(young, ransom(9)) == FactoredAction.advance(0)  # too young to call it ransomware
    assert young.env_state(0).last_decision == Decision(DecisionReason.ADVANCE_FULL_ALPHA, slot=0)


def test_accuracy_drop_after_five_epochs_in_stage_prunes() -> None:
    def training(epochs_in_stage: int) -> EnvObservation:
        report = seed(epochs_in_stage=epochs_in_stage, metrics=SeedMetrics(accuracy_at_stage_entry=60.0))
        return observation([slot(0, S.TRAINING, report), slot(1), slot(2)], val_accuracy=57.5, epoch=2)

    controller = _controller()
    assert _act(controller, training(5)) == FactoredAction.prune(0)
    assert controller.env_state(0).last_decision == Decision(DecisionReason.PRUNE_ACCURACY_DROP, slot=0)
    assert _act(_controller(), training(4)) == FactoredAction.advance(0)


def test_a_stalled_seed_is_pruned_so_growth_can_go_on() -> None:
    def training(blocked: int) -> EnvObservation:
        report = seed(gate_blocked_epochs=blocked, metrics=SeedMetrics(gradient_norm=0.0, gradient_health=0.0))
        return observation([slot(0, S.TRAINING, report), slot(1), slot(2)], epoch=8)

    controller = _controller()
    assert _act(controller, training(2)) == FactoredAction.advance(0)  # the gate may still let it through
    assert _act(controller, training(3)) == FactoredAction.prune(0)
    state = controller.env_state(0)
    assert state.last_decision == Decision(DecisionReason.PRUNE_STALLED, slot=0)
    assert state.blueprint_penalties[Blueprint.CONV_LIGHT] == 2.0  # the next germination tries another one
    patient = _controller(HeuristicConfig(stalled_prune_epochs=5))
    assert _act(patient, training(4)) == FactoredAction.advance(0)
    with pytest.raises(ConfigError, match="stalled_prune_epochs"):
        HeuristicConfig(stalled_prune_epochs=0)


def test_blending_advances_at_full_alpha_and_retargets_partial_targets() -> None:
    controller = _controller()
    full = slot(0, S.BLENDING, seed(alpha=AlphaSnapshot(1.0, 1.0, AlphaMode.HOLD, 5, 5)))
    ramping = slot(0, S.BLENDING, seed(alpha=AlphaSnapshot(0.6, 1.0, AlphaMode.UP, 5, 3)))
    partial = slot(0, S.BLENDING, seed(alpha=AlphaSnapshot(0.7, 0.7)))
    assert _act(controller, observation([full, slot(1), slot(2)], epoch=1)) == FactoredAction.advance(0)
    assert _act(controller, observation([ramping, slot(1), slot(2)], epoch=2)).op is LifecycleOp.WAIT
    retarget = _act(controller, observation([partial, slot(1), slot(2)], epoch=3))
    assert retarget.op is LifecycleOp.SET_ALPHA_TARGET and retarget.alpha_target is AlphaTarget.FULL


def test_every_slot_is_managed_by_priority() -> None:
    controller = _controller()
    training = slot(0, S.TRAINING)
    holding = slot(1, S.HOLDING, seed(metrics=SeedMetrics(contribution=3.0), alpha=AlphaSnapshot(1.0, 1.0)))
    blending = slot(2, S.BLENDING, seed(alpha=AlphaSnapshot(1.0, 1.0)))
    assert _act(controller, observation([training, holding, blending], epoch=1)) == FactoredAction.fossilize(1)
    assert _act(
        controller, observation([training, slot(1, S.FOSSILIZED), blending], epoch=2)
    ) == FactoredAction.advance(2)
    assert _act(
        controller, observation([training, slot(1, S.FOSSILIZED), slot(2, S.HOLDING)], epoch=3)
    ) == FactoredAction.advance(0)


def test_envs_are_independent_and_start_episodes_resets_them() -> None:
    controller = HeuristicController(SLOTS)
    controller.start_episodes(2)
    doomed = [slot(0, S.HOLDING, seed(metrics=SeedMetrics(contribution=0.0))), slot(1), slot(2)]
    actions = controller.act([1, 0], [observation(doomed), observation()])
    assert [a.op for a in actions] == [LifecycleOp.PRUNE, LifecycleOp.WAIT]
    assert controller.env_state(1).blueprint_penalties and not controller.env_state(0).blueprint_penalties
    controller.start_episodes(2)
    assert not controller.env_state(1).blueprint_penalties and controller.env_state(1).signals.epochs_seen == 0


def test_protocol_misuse_is_refused() -> None:
    controller = HeuristicController(SLOTS)
    with pytest.raises(InvalidStateMachineError, match="before start_episodes"):
        controller.act([0], [observation()])
    controller.start_episodes(2)
    with pytest.raises(ConfigError, match="outside the 2 envs"):
        controller.act([2], [observation()])
    with pytest.raises(ConfigError, match="2 env ids for 1 observations"):
        controller.act([0, 1], [observation()])


def test_configuration_is_validated() -> None:
    with pytest.raises(ConfigError, match="reward hacking"):
        HeuristicConfig(min_fossilize_contribution=0.0)
    with pytest.raises(ConfigError, match="not transformer blueprints"):
        HeuristicController(SLOTS, Topology.TRANSFORMER, HeuristicConfig(blueprint_rotation=(Blueprint.CONV_LIGHT,)))
    assert HeuristicController(SLOTS, Topology.TRANSFORMER).rotation[0] is Blueprint.LORA


@settings(max_examples=40, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=6))
def test_only_mask_allowed_actions(sequence: list[EnvObservation]) -> None:
    controller = _controller(
        HeuristicConfig(min_germinate_epoch=0, plateau_epochs_to_germinate=0, stabilization_epochs=1)
    )
    for obs in sequence:
        action = _act(controller, obs)
        masks = build_mask_arrays([obs], SLOTS, Topology.CNN)
        assert masks.slot_by_op[0, action.op, action.slot]
        assert action == action.canonical()
