"""The model's lifecycle services: execute (success, refusals that change nothing, stage bookkeeping),
tick, parameter groups and counts, the seed-parameter version, reports and determinism."""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import (
    batch,
    digits_model,
    fake_measure,
    ok,
    one_thread,  # noqa: F401  (autouse fixture)
    to_blending,
    to_fossil,
    to_holding,
    to_training,
    train_step,
)

from esper.kasmina import BLUEPRINTS, GateConfig, MorphogeneticModel
from esper.kasmina.alpha import ALPHA_TARGET_VALUES
from esper.leyline import (
    MIN_PRUNE_AGE,
    TEMPO_EPOCHS,
    AlphaCurve,
    AlphaMode,
    AlphaSpeed,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    FactoredAction,
    InvalidSlotIdError,
    SeedStage,
    SlotReport,
    Tempo,
    Topology,
)


def _assert_unchanged(model: MorphogeneticModel, before: MorphogeneticModel) -> None:
    """Same reports, same version, same weights, and the germination generator was not drawn from (the next
    germination yields the same seed as in an untouched copy)."""
    assert model.slot_reports() == before.slot_reports()
    assert model.seed_parameter_version == before.seed_parameter_version
    after_state, before_state = model.state_dict(), before.state_dict()
    assert after_state.keys() == before_state.keys()
    assert all(torch.equal(after_state[k], before_state[k]) for k in after_state)
    after_generator, before_generator = (each.lifecycle_state()["generator"] for each in (model, before))
    assert isinstance(after_generator, torch.Tensor) and isinstance(before_generator, torch.Tensor)
    assert torch.equal(after_generator, before_generator)


def test_gate_config_scales_with_the_horizon() -> None:
    assert GateConfig.for_horizon(150).min_training_epochs == 10
    assert GateConfig.for_horizon(60).min_training_epochs == 4
    assert GateConfig.for_horizon(3).min_training_epochs == 1
    assert GateConfig().min_gradient_health == 0.7
    assert GateConfig().min_fossilize_contribution == 0.5
    with pytest.raises(ValueError, match="> 0"):
        GateConfig(min_fossilize_contribution=0.0)


def test_germinate_records_choices_and_accuracy() -> None:
    model = digits_model()
    action = FactoredAction.germinate(2, Blueprint.DEPTHWISE, BlendStyle.SIGMOID_ADD, Tempo.SLOW, AlphaTarget.SEVENTY)
    ok(model.execute(action, 42.5))
    report = model.slot_reports()[2]
    assert report.stage is SeedStage.GERMINATED and report.seed is not None
    assert (report.seed.blueprint, report.seed.style, report.seed.tempo) == (
        Blueprint.DEPTHWISE,
        BlendStyle.SIGMOID_ADD,
        Tempo.SLOW,
    )
    assert report.seed.metrics.accuracy_at_germination == 42.5
    assert report.seed.metrics.accuracy_at_stage_entry == 42.5
    assert report.seed.param_count == 4 * 4 + 11 * 4  # depthwise at C=4; under ADD the gate costs nothing


@pytest.mark.parametrize(
    "action",
    [
        FactoredAction.germinate(1, Blueprint.LORA),  # not a CNN blueprint
        FactoredAction.advance(1),  # empty slot
        FactoredAction.fossilize(0),  # not HOLDING
        FactoredAction.prune(0),  # too young
        FactoredAction.set_alpha_target(0, AlphaTarget.HALF),  # not BLENDING/HOLDING
        FactoredAction.germinate(0, Blueprint.NORM),  # busy
    ],
)
def test_invalid_actions_fail_and_change_nothing(action: FactoredAction) -> None:
    model, untouched = digits_model(), digits_model()
    for each in (model, untouched):
        to_training(each, 0)
    result = model.execute(action, 50.0)
    assert not result.success and result.reason
    _assert_unchanged(model, untouched)


def test_slot_index_out_of_range_is_an_error() -> None:
    with pytest.raises(InvalidSlotIdError):
        digits_model().execute(FactoredAction.advance(7), 0.0)


def test_the_fastest_honest_path() -> None:
    model = digits_model(gate_config=GateConfig(min_training_epochs=2))
    ok(model.execute(FactoredAction.germinate(0, Blueprint.CONV_LIGHT, tempo=Tempo.FAST), 10.0))
    ok(model.execute(FactoredAction.advance(0), 10.0))
    refused = model.execute(FactoredAction.advance(0), 10.0)
    assert not refused.success and "min_training_epochs" in refused.reason
    for _ in range(2):
        model.tick()
    refused = model.execute(FactoredAction.advance(0), 10.0)
    assert not refused.success and "not been measured" in refused.reason
    train_step(model, *batch())
    ok(model.execute(FactoredAction.advance(0), 10.0))
    for step in range(TEMPO_EPOCHS[Tempo.FAST]):
        refused = model.execute(FactoredAction.advance(0), 10.0)
        assert not refused.success and "alpha_ramp_finished" in refused.reason, step
        model.tick()
    ok(model.execute(FactoredAction.advance(0), 10.0))
    refused = model.execute(FactoredAction.fossilize(0), 10.0)
    assert not refused.success and "contribution_measured" in refused.reason
    fake_measure(model, contribution=0.4)
    refused = model.execute(FactoredAction.fossilize(0), 10.0)
    assert not refused.success and "min_fossilize_contribution" in refused.reason
    fake_measure(model, contribution=0.6)
    ok(model.execute(FactoredAction.fossilize(0), 10.0))
    assert model.stages()[0] is SeedStage.FOSSILIZED


def test_advance_to_blending_ramps_to_the_germination_target_with_the_style_curve() -> None:
    model = digits_model()
    to_blending(model, 0, style=BlendStyle.SIGMOID_ADD, tempo=Tempo.STANDARD, target=AlphaTarget.SEVENTY)
    alpha = model.slot_reports()[0].seed.alpha  # type: ignore[union-attr]
    assert (alpha.target, alpha.steps_total, alpha.curve, alpha.mode) == (
        ALPHA_TARGET_VALUES[AlphaTarget.SEVENTY],
        TEMPO_EPOCHS[Tempo.STANDARD],
        AlphaCurve.SIGMOID,
        AlphaMode.UP,
    )
    for _ in range(TEMPO_EPOCHS[Tempo.STANDARD]):
        model.tick()
    refused = model.execute(FactoredAction.advance(0), 10.0)
    assert not refused.success and "alpha_target_full" in refused.reason
    action = FactoredAction.set_alpha_target(0, AlphaTarget.FULL, AlphaSpeed.FAST, AlphaCurve.COSINE)
    ok(model.execute(action, 10.0))
    refused = model.execute(action, 10.0)
    assert not refused.success and "ramping" in refused.reason
    for _ in range(3):
        model.tick()
    ok(model.execute(FactoredAction.advance(0), 10.0))


def test_scheduled_prune_through_the_model() -> None:
    model = digits_model()
    to_holding(model, 0)
    for _ in range(MIN_PRUNE_AGE):
        model.tick()
    version = model.seed_parameter_version
    ok(model.execute(FactoredAction.prune(0, AlphaSpeed.FAST, AlphaCurve.COSINE), 10.0))
    assert all(not p.requires_grad for p in model.seed_parameters("r0c0"))
    assert model.slot("r0c0").require_seed().param_count() > 0
    for _ in range(3):
        model.tick()
    assert model.stages()[0] is SeedStage.EMBARGOED
    assert model.seed_parameter_version > version
    assert list(model.seed_parameters("r0c0")) == []


def test_parameter_groups_partition_the_model_and_counts_ignore_requires_grad() -> None:
    model = digits_model()
    to_fossil(model, 0)
    to_blending(model, 1)
    to_training(model, 2)
    host = {id(p) for p in model.host_parameters()}
    seeds = [{id(p) for p in model.seed_parameters(s)} for s in ("r0c0", "r0c1", "r0c2")]
    assert all(not (host & group) for group in seeds)
    assert host.union(*seeds) == {id(p) for p in model.parameters()}
    assert model.host_param_count() == 75
    counts = [model.slot(s).require_seed().param_count() for s in ("r0c0", "r0c1", "r0c2")]
    assert counts == [9 * c * c + 2 * c for c in (1, 2, 4)]  # ADD: the unused blend gate costs nothing
    model.tick()  # r0c1's alpha becomes > 0; r0c2 is still in TRAINING (alpha 0)
    assert model.active_seed_param_count() == counts[0] + counts[1]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    assert model.active_seed_param_count() == counts[0] + counts[1]
    assert model.host_param_count() == 75


def test_seed_parameter_version_moves_when_the_seed_set_changes() -> None:
    model = digits_model()
    versions = [model.seed_parameter_version]
    to_training(model, 0)
    versions.append(model.seed_parameter_version)
    model.tick()
    versions.append(model.seed_parameter_version)
    assert versions[0] < versions[1] == versions[2]


def test_reports_follow_the_slot_config_and_show_empty_slots() -> None:
    model = digits_model()
    to_training(model, 1)
    reports = model.slot_reports()
    assert [str(r.slot_id) for r in reports] == ["r0c0", "r0c1", "r0c2"]
    assert reports[0] == SlotReport.empty(reports[0].slot_id)
    assert reports[1].stage is SeedStage.TRAINING


def test_the_same_seed_gives_identical_seeds() -> None:
    first, second = digits_model(seed=9), digits_model(seed=9)
    for model in (first, second):
        to_blending(model, 0)
        to_training(model, 2, Blueprint.BOTTLENECK)
    for slot in ("r0c0", "r0c2"):
        for a, b in zip(first.seed_parameters(slot), second.seed_parameters(slot), strict=True):
            assert torch.equal(a, b)
    x, _ = batch()
    assert torch.equal(first(x), second(x))


def test_gradient_health_reaches_reports_and_follows_the_epoch() -> None:
    model = digits_model()
    to_training(model, 0)
    assert model.slot_reports()[0].seed.metrics.gradient_health is None  # type: ignore[union-attr]
    x, y = batch()
    for _ in range(3):
        train_step(model, x, y)
    metrics = model.slot_reports()[0].seed.metrics  # type: ignore[union-attr]
    assert metrics.gradient_norm is not None and metrics.gradient_norm > 0
    assert metrics.gradient_health == 1.0
    model.tick()  # the finished epoch stays visible until the next backward
    assert model.slot_reports()[0].seed.metrics.gradient_norm == metrics.gradient_norm  # type: ignore[union-attr]


@pytest.mark.parametrize("blueprint", [Blueprint.CONV_LIGHT, Blueprint.NORM, Blueprint.ATTENTION])
def test_a_seed_costs_its_blend_gate_only_under_the_gate_operator(blueprint: Blueprint) -> None:
    model = digits_model()
    to_blending(model, 1, blueprint, BlendStyle.SIGMOID_ADD)  # r0c1: 2 channels
    model.tick()
    channels = model.slot("r0c1").channels
    module_params = BLUEPRINTS.spec(Topology.CNN, blueprint).param_estimate(channels)
    assert model.slot("r0c1").require_seed().param_count() == module_params
    report = model.slot_reports()[1].seed
    assert report is not None and report.param_count == module_params
    assert model.active_seed_param_count() == module_params
    alpha = model.slot("r0c1").require_seed().alpha
    while alpha.ramping:
        model.tick()
    ok(model.execute(FactoredAction.set_alpha_target(1, AlphaTarget.HALF, style=BlendStyle.GATED_GATE), 30.0))
    assert model.slot("r0c1").require_seed().param_count() == module_params + channels + 1
    assert model.active_seed_param_count() == module_params + channels + 1
