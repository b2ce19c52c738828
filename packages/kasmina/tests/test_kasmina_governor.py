"""Governor: NaN, collapse and planted divergence roll back; ordinary training and slow drift do not; snapshots
are taken on schedule and after fossilization; a rollback restores the snapshot through the model."""

from __future__ import annotations

import math

import pytest
import torch
from _kasmina_fixtures import (
    batch,
    digits_model,
    one_thread,  # noqa: F401  (autouse fixture)
    to_fossil,
    to_training,
    train_step,
)

from esper.kasmina import Governor, GovernorConfig, RollbackReason
from esper.leyline import SeedStage

LN10 = math.log(10)


def _governor(**overrides: float) -> Governor:
    return Governor(digits_model(), GovernorConfig(num_classes=10, **overrides))  # type: ignore[arg-type]


def _feed(governor: Governor, losses: list[float]) -> list[RollbackReason | None]:
    return [governor.check(loss).reason for loss in losses]


@pytest.mark.parametrize("loss", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_rolls_back_at_once(loss: float) -> None:
    governor = _governor()
    verdict = governor.check(loss)
    assert verdict.rollback and verdict.reason is RollbackReason.NON_FINITE_LOSS


def test_planted_divergence_rolls_back_after_patience_epochs() -> None:
    governor = _governor()
    # Far above the recent losses, but below random guessing (so this is not the collapse rule).
    reasons = _feed(governor, [1.0, 0.6, 0.4, 0.35, 0.3, 0.3, 1.0, 1.2])
    assert reasons == [None] * 8
    verdict = governor.check(1.4)
    assert verdict.rollback and verdict.reason is RollbackReason.DIVERGENCE
    assert "3 consecutive" in verdict.detail


def test_a_single_spike_resets_the_streak() -> None:
    governor = _governor()
    assert _feed(governor, [1.0, 0.9, 0.8, 0.8, 1.9, 1.9, 0.8, 1.9, 1.9, 0.8]) == [None] * 10


def test_collapse_to_random_guessing_rolls_back_once_the_model_has_learned() -> None:
    untrained = _governor()
    assert _feed(untrained, [LN10, LN10 * 1.01, LN10]) == [None] * 3  # never learned: nothing to return to
    learned = _governor()
    assert _feed(learned, [2.0, 1.2, 0.6]) == [None] * 3
    verdict = learned.check(LN10)
    assert verdict.rollback and verdict.reason is RollbackReason.COLLAPSE


def test_ordinary_training_and_slow_overfitting_never_roll_back() -> None:
    decreasing = [2.3 * 0.9**epoch for epoch in range(30)]
    overfitting = [decreasing[-1] * 1.04**epoch for epoch in range(30)]
    noisy = [overfitting[-1] * (1 + 0.1 * math.sin(epoch)) for epoch in range(30)]
    assert set(_feed(_governor(), decreasing + overfitting + noisy)) == {None}


def test_snapshots_every_interval_and_after_fossilization() -> None:
    model = digits_model()
    governor = Governor(model, GovernorConfig(num_classes=10, snapshot_interval=4))
    taken = [governor.check(1.0).snapshot_taken for _ in range(8)]
    assert taken == [False, False, False, True, False, False, False, True]
    to_fossil(model, 0)
    assert governor.check(1.0).snapshot_taken
    assert governor.snapshot_epoch == 9


def test_rollback_restores_the_snapshot_through_the_model() -> None:
    model = digits_model()
    governor = Governor(model, GovernorConfig(num_classes=10))
    saved = {k: v.clone() for k, v in model.host.state_dict().items()}
    to_training(model, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    train_step(model, *batch())
    optimizer.step()
    verdict = governor.check(math.nan)
    assert verdict.rollback
    assert governor.rollback() == 0
    assert all(torch.equal(v, saved[k]) for k, v in model.host.state_dict().items())
    assert model.stages()[1] is SeedStage.DORMANT  # the seed was germinated after the snapshot


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        GovernorConfig(num_classes=1)
    with pytest.raises(ValueError, match="ratio"):
        GovernorConfig(num_classes=10, ratio=1.0)
    assert GovernorConfig(num_classes=10).random_guess_loss == pytest.approx(LN10)
