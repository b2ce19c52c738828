"""Counterfactuals: the plan's rows, the fused batched forward equal to K separate forwards, the batching choice
(fused or separate, per device when auto), and the results landing in the seeds' reports (contribution,
full-alpha probe, velocity, freshness)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from _kasmina_fixtures import (
    ALL_DIGITS_SLOTS,
    batch,
    digits_model,
    one_thread,  # noqa: F401  (autouse fixture)
    perturb_seed,
    to_blending,
    to_fossil,
    to_training,
)

from esper.kasmina import CounterfactualBatching, CounterfactualPlan, MorphogeneticModel, RowKind, count_correct
from esper.leyline import BlendStyle, Blueprint, SeedStage


def _mixed_model() -> MorphogeneticModel:
    """r0c0 fossil, r0c1 blending (alpha 1/3, GATE), r0c2 training (MULTIPLY), r1c0 blending (alpha 2/3, ADD).
    Seeds develop one at a time, so the TRAINING seed is the last one germinated."""
    model = digits_model(seed=2, slot_config=ALL_DIGITS_SLOTS)
    to_fossil(model, 0)
    to_blending(model, 3, Blueprint.DEPTHWISE)
    to_blending(model, 1, style=BlendStyle.GATED_GATE)
    model.tick()
    to_training(model, 2, Blueprint.CONV_SMALL, BlendStyle.LINEAR_MULTIPLY)
    for slot in ("r0c0", "r0c1", "r0c2", "r1c0"):
        perturb_seed(model, slot, scale=0.3)
    model.eval()
    return model


def test_plan_rows() -> None:
    plan = _mixed_model().counterfactual_plan()
    assert plan.labels == ("current", "r0c0 alpha=0", "r0c1 alpha=0", "r1c0 alpha=0", "r0c2 alpha=1")
    expected = torch.full((5, 5), math.nan)
    expected[1, 0] = expected[2, 1] = expected[3, 3] = 0.0
    expected[4, 2] = 1.0
    torch.testing.assert_close(plan.alphas, expected, equal_nan=True)


def _separate_forward(model: MorphogeneticModel, row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The reference: a copy of the model with the row's alphas set for real (TRAINING seeds blend; an
    override on an empty slot means nothing)."""
    clone = copy.deepcopy(model)
    for index, value in enumerate(row.tolist()):
        slot = clone._slots[index]
        if math.isnan(value) or slot.seed is None:
            continue
        if slot.stage is SeedStage.TRAINING:
            slot.stage = SeedStage.BLENDING
        slot.require_seed().alpha.value = value
    with torch.no_grad():
        out: torch.Tensor = clone(x)
    return out


def test_fused_forward_equals_k_separate_forwards() -> None:
    model = _mixed_model()
    plan = model.counterfactual_plan()
    x, _ = batch(3, size=10)
    fused = model.forward_with_alphas(x, plan.alphas)
    assert fused.shape == (len(plan.rows), 10, 10)
    for k in range(len(plan.rows)):
        torch.testing.assert_close(fused[k], _separate_forward(model, plan.alphas[k], x), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(fused[0], model(x))
    # Each forced row really changes something (the configurations are distinct).
    assert all(not torch.allclose(fused[0], fused[k]) for k in range(1, len(plan.rows)))


def test_arbitrary_override_tables() -> None:
    model = _mixed_model()
    x, _ = batch(4, size=6)
    alphas = torch.tensor([[0.5, math.nan, 0.25, math.nan, 1.0], [1.0, 0.0, math.nan, 0.75, math.nan]])
    fused = model.forward_with_alphas(x, alphas)
    for k in range(2):
        torch.testing.assert_close(fused[k], _separate_forward(model, alphas[k], x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batching", list(CounterfactualBatching))
def test_fused_forward_needs_eval_mode_and_valid_alphas(batching: CounterfactualBatching) -> None:
    model = _mixed_model()
    x, _ = batch()
    with pytest.raises(ValueError, match="num_slots=5"):
        model.forward_with_alphas(x, torch.zeros(2, 3), batching)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.forward_with_alphas(x, torch.full((2, 5), 2.0), batching)
    model.train()
    with pytest.raises(ValueError, match="eval mode"):
        model.forward_with_alphas(x, torch.zeros(1, 5), batching)


def _host_forward_sizes(model: MorphogeneticModel) -> list[int]:
    """Batch size of every host forward from now on (a forward hook that records and never changes anything)."""
    sizes: list[int] = []
    model.host.register_forward_hook(lambda _module, inputs, _output: sizes.append(inputs[0].shape[0]))
    return sizes


def test_separate_batching_runs_one_forward_per_row_with_the_fused_results() -> None:
    model = _mixed_model()
    plan = model.counterfactual_plan()
    x, y = batch(6, size=12)
    sizes = _host_forward_sizes(model)
    fused = model.forward_with_alphas(x, plan.alphas, CounterfactualBatching.FUSED)
    assert sizes == [5 * 12]
    sizes.clear()
    separate = model.forward_with_alphas(x, plan.alphas, CounterfactualBatching.SEPARATE)
    assert sizes == [12] * 5
    assert separate.shape == fused.shape == (5, 12, 10)
    torch.testing.assert_close(separate, fused, rtol=1e-5, atol=1e-6)
    assert torch.equal(count_correct(separate, y), count_correct(fused, y))


def test_auto_batching_is_separate_on_the_cpu_and_fused_on_accelerators() -> None:
    auto = CounterfactualBatching.AUTO
    assert auto.resolve(torch.device("cpu")) is CounterfactualBatching.SEPARATE
    assert auto.resolve(torch.device("cuda")) is CounterfactualBatching.FUSED
    assert auto.resolve(torch.device("mps")) is CounterfactualBatching.FUSED
    for explicit in (CounterfactualBatching.FUSED, CounterfactualBatching.SEPARATE):
        assert explicit.resolve(torch.device("cpu")) is explicit
        assert explicit.resolve(torch.device("cuda")) is explicit
    model = _mixed_model()
    plan = model.counterfactual_plan()
    sizes = _host_forward_sizes(model)
    model.forward_with_alphas(batch(7, size=3)[0], plan.alphas)  # the default is AUTO: separate on this CPU model
    assert sizes == [3] * len(plan.rows)


def test_contributions_land_in_reports() -> None:
    model = _mixed_model()
    plan = model.counterfactual_plan()
    x, y = batch(5, size=32)
    logits = model.forward_with_alphas(x, plan.alphas)
    accuracies = count_correct(logits, y).float() / 32 * 100
    model.record_counterfactuals(plan, accuracies)
    reports = model.slot_reports()
    acc = accuracies.tolist()
    assert reports[0].seed.metrics.contribution == pytest.approx(acc[0] - acc[1])  # type: ignore[union-attr]
    assert reports[1].seed.metrics.contribution == pytest.approx(acc[0] - acc[2])  # type: ignore[union-attr]
    assert reports[2].seed.metrics.contribution_at_full_alpha == pytest.approx(acc[4] - acc[0])  # type: ignore[union-attr]
    assert reports[3].seed.metrics.contribution == pytest.approx(acc[0] - acc[3])  # type: ignore[union-attr]
    assert reports[2].seed.metrics.contribution is None  # type: ignore[union-attr]
    assert all(r.seed.metrics.epochs_since_measurement == 0 for r in reports[:4])  # type: ignore[union-attr]


def test_velocity_and_freshness() -> None:
    model = _mixed_model()
    model.record_counterfactuals(model.counterfactual_plan(), [60.0, 50.0, 55.0, 61.0, 62.0])
    model.tick()
    model.tick()
    assert model.slot_reports()[0].seed.metrics.epochs_since_measurement == 2  # type: ignore[union-attr]
    # A probe-only measurement (the TRAINING seed's alpha = 1 row) refreshes freshness, not the velocity base.
    plan = model.counterfactual_plan()
    keep = [k for k, row in enumerate(plan.rows) if row.kind is not RowKind.ALPHA_ZERO]
    probes = CounterfactualPlan(plan.alphas[keep], tuple(plan.rows[k] for k in keep))
    model.record_counterfactuals(probes, [60.0, 61.0])
    assert model.slot_reports()[2].seed.metrics.epochs_since_measurement == 0  # type: ignore[union-attr]
    model.tick()
    model.record_counterfactuals(model.counterfactual_plan(), [60.0, 46.0, 55.0, 61.0, 62.0])
    metrics = model.slot_reports()[0].seed.metrics  # type: ignore[union-attr]
    assert metrics.contribution == 14.0
    assert metrics.contribution_velocity == pytest.approx((14.0 - 10.0) / 3)
    assert metrics.epochs_since_measurement == 0


def test_rows_of_a_replaced_seed_are_ignored() -> None:
    """A rollback between planning and recording removes the seed the plan measured: its rows are dropped."""
    model = digits_model()
    before = model.snapshot()
    to_training(model, 0)
    plan = model.counterfactual_plan()
    model.restore(before)
    model.record_counterfactuals(plan, [50.0, 70.0])
    assert model.slot_reports()[0].seed is None
    with pytest.raises(ValueError, match="one accuracy per plan row"):
        model.record_counterfactuals(plan, [50.0])
