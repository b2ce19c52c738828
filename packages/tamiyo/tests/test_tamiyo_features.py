"""Feature encoding: layout, scales, sentinels, safety against NaN/inf, and blueprint indices from the enum."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _tamiyo_fixtures import SLOTS, observation, observations, seed, slot
from hypothesis import given, settings

from esper.leyline import (
    HISTORY_LENGTH,
    MIN_PRUNE_AGE,
    AlphaMode,
    AlphaSnapshot,
    BlendStyle,
    Blueprint,
    EnvObservation,
    FeatureWidthError,
    InvalidSlotIdError,
    LastAction,
    LifecycleOp,
    SeedMetrics,
    SeedStage,
    SlotConfig,
    SlotId,
    SlotReport,
)
from esper.tamiyo import (
    BASE_FEATURES,
    BASE_LAYOUT,
    SLOT_FEATURES,
    SLOT_LAYOUT,
    encode_features,
    feature_dim,
    slot_block,
)
from esper.tamiyo.encoding.feature_layout import BASE_FIELDS, HISTORY_SENTINEL, NUM_BLUEPRINT_EMBEDDINGS, SLOT_FIELDS
from esper.tamiyo.encoding.features import NONFINITE_LOSS, UNMEASURED_HEALTH


def _symlog(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


def _row(obs_features: torch.Tensor, field: str) -> np.ndarray:
    return obs_features[0, BASE_LAYOUT[field]].numpy()


def _slot(obs_features: torch.Tensor, index: int, field: str) -> np.ndarray:
    return obs_features[0, slot_block(index)][SLOT_LAYOUT[field]].numpy()


def test_layout_is_contiguous_and_sized_by_the_formula() -> None:
    for layout, fields, total in ((BASE_LAYOUT, BASE_FIELDS, BASE_FEATURES), (SLOT_LAYOUT, SLOT_FIELDS, SLOT_FEATURES)):
        covered = [column for name, _ in fields for column in range(layout[name].start, layout[name].stop)]
        assert covered == list(range(total))
    assert feature_dim(3) == BASE_FEATURES + 3 * SLOT_FEATURES
    assert slot_block(2) == slice(BASE_FEATURES + 2 * SLOT_FEATURES, BASE_FEATURES + 3 * SLOT_FEATURES)


def test_batch_shapes_and_dtypes() -> None:
    batch = encode_features([observation(), observation()], SLOTS)
    assert batch.features.shape == (2, feature_dim(3)) and batch.features.dtype == torch.float32
    assert batch.blueprint_indices.shape == (2, 3) and batch.blueprint_indices.dtype == torch.int64


def test_blueprint_indices_are_the_leyline_enum_values() -> None:
    for blueprint in Blueprint:
        assert 0 <= blueprint.value < NUM_BLUEPRINT_EMBEDDINGS
        if blueprint is Blueprint.NOOP:
            continue
        batch = encode_features(
            [observation([slot(0), slot(1, SeedStage.TRAINING, seed(blueprint=blueprint)), slot(2)])], SLOTS
        )
        assert batch.blueprint_indices.tolist() == [[0, int(blueprint), 0]]


def test_histories_are_right_aligned_with_sentinel_for_unseen_epochs() -> None:
    features = encode_features([observation(loss_history=(2.0, 1.0), accuracy_history=(30.0, 40.0))], SLOTS).features
    unseen = HISTORY_LENGTH - 2
    assert _row(features, "loss_history")[:unseen].tolist() == [HISTORY_SENTINEL] * unseen
    np.testing.assert_allclose(_row(features, "loss_history")[unseen:], [_symlog(2.0) / 7, _symlog(1.0) / 7], rtol=1e-6)
    np.testing.assert_allclose(_row(features, "accuracy_history")[unseen:], [0.3, 0.4], rtol=1e-6)


def test_base_fields() -> None:
    obs = observation(
        [slot(0, SeedStage.TRAINING), slot(1, SeedStage.EMBARGOED, dwell=3), slot(2)],
        epoch=15,
        max_epochs=60,
        val_loss=1.5,
        val_accuracy=72.0,
        germinations_remaining=25,
        last_action=LastAction(LifecycleOp.PRUNE, 1, False),
    )
    features = encode_features([obs], SLOTS).features
    assert _row(features, "epoch_progress")[0] == pytest.approx(0.25)
    assert _row(features, "val_loss")[0] == pytest.approx(_symlog(1.5) / 7)
    assert _row(features, "val_accuracy")[0] == pytest.approx(0.72)
    counts = _row(features, "stage_counts")
    assert counts[SeedStage.TRAINING] == pytest.approx(1 / 3) and counts[SeedStage.DORMANT] == pytest.approx(1 / 3)
    assert counts[SeedStage.EMBARGOED] == pytest.approx(1 / 3) and counts.sum() == pytest.approx(1.0)
    assert _row(features, "germination_available")[0] == 1.0
    assert _row(features, "germinations_remaining")[0] == 1.0  # saturates
    assert _row(features, "last_action_success")[0] == 0.0
    assert _row(features, "last_op").tolist() == [float(op is LifecycleOp.PRUNE) for op in LifecycleOp]
    assert _slot(features, 1, "dwell_remaining")[0] == pytest.approx(3 / 5)
    assert _slot(features, 1, "present")[0] == 0.0 and _slot(features, 2, "stage")[SeedStage.DORMANT] == 1.0


def test_slot_fields_of_a_seed() -> None:
    report = seed(
        style=BlendStyle.LINEAR_MULTIPLY,
        alpha=AlphaSnapshot(0.4, 1.0, AlphaMode.UP, 5, 2),
        metrics=SeedMetrics(
            contribution=25.0,
            contribution_at_full_alpha=-3.0,
            contribution_velocity=0.5,
            epochs_since_measurement=1,
            gradient_norm=10.0,
            gradient_health=None,
            accuracy_at_stage_entry=70.0,
            accuracy_at_germination=None,
        ),
        age=MIN_PRUNE_AGE,
        epochs_in_stage=6,
        param_count=500,
    )
    obs = observation([slot(0, SeedStage.BLENDING, report), slot(1), slot(2)], val_accuracy=65.0, host_param_count=1000)
    features = encode_features([obs], SLOTS).features
    assert _slot(features, 0, "present")[0] == 1.0
    assert _slot(features, 0, "alpha")[0] == pytest.approx(0.4)
    assert _slot(features, 0, "alpha_mode").tolist() == [0.0, 1.0, 0.0]
    assert _slot(features, 0, "alpha_progress")[0] == pytest.approx(0.4)
    assert _slot(features, 0, "alpha_steps_remaining")[0] == pytest.approx(3 / 8)
    assert _slot(features, 0, "blend_operator").tolist() == [0.0, 1.0, 0.0]
    assert _slot(features, 0, "contribution")[0] == 1.0  # 25 pp / 10, clipped
    assert _slot(features, 0, "contribution_at_full_alpha")[0] == pytest.approx(-0.3)
    assert _slot(features, 0, "counterfactual_freshness")[0] == pytest.approx(0.5)
    assert _slot(features, 0, "gradient_norm")[0] == pytest.approx(_symlog(10.0) / 7)
    assert _slot(features, 0, "gradient_health")[0] == UNMEASURED_HEALTH
    assert _slot(features, 0, "can_prune")[0] == 1.0
    assert _slot(features, 0, "param_ratio")[0] == pytest.approx(_symlog(0.5) / 7)
    assert _slot(features, 0, "accuracy_since_stage_entry")[0] == pytest.approx(-0.5)
    assert _slot(features, 0, "accuracy_since_germination")[0] == 0.0
    assert _slot(features, 0, "epochs_in_stage")[0] == pytest.approx(6 / 60)


def test_a_stalled_seed_is_visible() -> None:
    def stalled(blocked: int) -> float:
        report = seed(gate_blocked_epochs=blocked)
        obs = observation([slot(0, SeedStage.TRAINING, report), slot(1), slot(2)])
        return float(_slot(encode_features([obs], SLOTS).features, 0, "gate_blocked")[0])

    assert stalled(0) == 0.0
    assert stalled(6) == pytest.approx(6 / 60)
    assert stalled(500) == 1.0  # clipped at the horizon


def test_never_measured_contribution_has_zero_freshness() -> None:
    features = encode_features([observation([slot(0, SeedStage.TRAINING), slot(1), slot(2)])], SLOTS).features
    assert _slot(features, 0, "counterfactual_freshness")[0] == 0.0
    assert _slot(features, 0, "can_prune")[0] == 1.0  # the default seed is 10 epochs old


@settings(max_examples=60, deadline=None)
@given(observations())
def test_any_observation_encodes_to_finite_bounded_features(obs: EnvObservation) -> None:
    features = encode_features([obs, obs], SLOTS).features
    assert torch.isfinite(features).all()
    assert features.abs().max() <= 2.0  # fixed scales keep every column near [-1, 1]
    assert torch.equal(features[0], features[1])


def test_nan_and_inf_become_defaults() -> None:
    poisoned = observation(val_loss=2.0, val_accuracy=math.inf, loss_history=(3.0,))
    features = encode_features([poisoned], SLOTS).features
    assert torch.isfinite(features).all()
    assert _row(features, "val_accuracy")[0] == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_is_distinguishable_from_a_perfect_one(bad: float) -> None:
    """A diverged epoch (NaN/inf loss) encodes above every finite loss and is flagged; loss 0 encodes as 0."""
    perfect = encode_features([observation(val_loss=0.0, loss_history=(0.0,))], SLOTS).features
    diverged = encode_features([observation(val_loss=bad, loss_history=(bad,))], SLOTS).features
    huge = encode_features([observation(val_loss=1e300, loss_history=(1e300,))], SLOTS).features
    assert torch.isfinite(diverged).all()
    assert _row(perfect, "val_loss")[0] == 0.0 and _row(perfect, "val_loss_finite")[0] == 1.0
    assert _row(diverged, "val_loss")[0] == NONFINITE_LOSS and _row(diverged, "val_loss_finite")[0] == 0.0
    assert _row(diverged, "loss_history")[-1] == NONFINITE_LOSS
    assert _row(huge, "val_loss")[0] < NONFINITE_LOSS and _row(huge, "val_loss_finite")[0] == 1.0
    assert _row(huge, "loss_history")[-1] < NONFINITE_LOSS
    assert NONFINITE_LOSS != HISTORY_SENTINEL


def test_observation_for_another_slot_config_is_refused() -> None:
    with pytest.raises(FeatureWidthError, match="3 slots"):
        encode_features([observation()], SlotConfig.after_blocks(2))
    shuffled = (SlotReport.empty(SlotId(0, 1)), SlotReport.empty(SlotId(0, 0)), SlotReport.empty(SlotId(0, 2)))
    with pytest.raises(InvalidSlotIdError, match="order matters"):
        encode_features([observation(shuffled)], SLOTS)


def test_readme_layout_table_matches_the_code() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    base_rows = re.findall(r"^\| (\d+(?:-\d+)?) \| `(\w+)` \|", readme, flags=re.MULTILINE)
    slot_rows = re.findall(r"^\| \+(\d+)(?:\.\.\+(\d+))? \| `(\w+)` \|", readme, flags=re.MULTILINE)
    documented_base = {name: columns for columns, name in base_rows}
    for name, columns in BASE_LAYOUT.items():
        expected = str(columns.start) if columns.stop - columns.start == 1 else f"{columns.start}-{columns.stop - 1}"
        assert documented_base.get(name) == expected, name
    documented_slot = {name: (int(first), int(last or first)) for first, last, name in slot_rows}
    assert documented_slot == {name: (c.start, c.stop - 1) for name, c in SLOT_LAYOUT.items()}
