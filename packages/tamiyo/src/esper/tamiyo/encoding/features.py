"""Batch encoding of observations into the policy's input tensors (layout in ``feature_layout``).

One preallocated float32 numpy array is filled env by env, then wrapped as one tensor (no per-element tensor
writes). Every scalar read from an observation passes through leyline's ``safe()``, so a NaN or an infinity
becomes a documented default and can never poison the features or the running normalizer. A loss is the
exception to "default": a NaN/inf loss means the model diverged, so it encodes as ``NONFINITE_LOSS``, above every
finite loss, never as the 0 of a perfect one (and ``val_loss_finite`` flags the current one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import (
    ALPHA_SPEED_TICKS,
    FAILURE_DWELL_EPOCHS,
    HISTORY_LENGTH,
    MIN_PRUNE_AGE,
    STYLE_TABLE,
    TEMPO_EPOCHS,
    Blueprint,
    EnvObservation,
    LastAction,
    SeedReport,
    SlotConfig,
    SlotReport,
    safe,
)
from esper.tamiyo.encoding.feature_layout import (
    BASE_FEATURES,
    BASE_LAYOUT,
    HISTORY_SENTINEL,
    SLOT_LAYOUT,
    feature_dim,
    slot_block,
)
from esper.tamiyo.encoding.observation_checks import require_configured_slots

#: symlog(x) / LOG_SCALE maps losses, gradient norms and parameter ratios up to ~1e3 into [0, 1].
LOG_SCALE = 7.0
#: Accuracy differences and contributions are in percentage points; 10 pp maps to 1 (then clipped).
POINTS_SCALE = 10.0
#: Germinations remaining saturate at this count.
GERMINATION_SCALE = 10
#: Encoded NaN/inf loss: above every finite loss (``safe()`` caps losses at 1e6, symlog(1e6) / 7 = 1.97), so a
#: diverged epoch reads as the worst loss, never as the 0 of a perfect one.
NONFINITE_LOSS = 2.0
#: Encoded gradient health of a seed whose gradients have not been measured yet (real health is in [0, 1]).
UNMEASURED_HEALTH = -1.0

_LONGEST_RAMP = float(max(*TEMPO_EPOCHS.values(), *ALPHA_SPEED_TICKS.values()))
_LONGEST_TEMPO = float(max(TEMPO_EPOCHS.values()))
_LONGEST_DWELL = float(max(1, *FAILURE_DWELL_EPOCHS.values()))

FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]


class FeatureBatch(NamedTuple):
    """Encoded observations (CPU tensors).

    - ``features``: ``[batch, feature_dim]`` float32, raw (the policy normalizes them);
    - ``blueprint_indices``: ``[batch, num_slots]`` int64, the ``Blueprint`` value of each slot's seed
      (0 = ``Blueprint.NOOP`` = no seed, the embedding's null row).
    """

    features: torch.Tensor
    blueprint_indices: torch.Tensor


def symlog(value: float) -> float:
    """sign(x) * log(1 + |x|): compresses large magnitudes, keeps sign and small values."""
    return math.copysign(math.log1p(abs(value)), value)


def encode_features(observations: Sequence[EnvObservation], slot_config: SlotConfig) -> FeatureBatch:
    """Features and blueprint indices of a batch of observations (one row per env)."""
    batch = len(observations)
    features: FloatArray = np.zeros((batch, feature_dim(slot_config.num_slots)), dtype=np.float32)
    blueprints: IndexArray = np.zeros((batch, slot_config.num_slots), dtype=np.int64)
    for row, observation in enumerate(observations):
        require_configured_slots(observation, slot_config)
        _fill_base(features[row, :BASE_FEATURES], observation)
        for index, report in enumerate(observation.slots):
            _fill_slot(features[row, slot_block(index)], report, observation)
            blueprints[row, index] = blueprint_index(report)
    return FeatureBatch(torch.from_numpy(features), torch.from_numpy(blueprints))


def blueprint_index(report: SlotReport) -> int:
    """Embedding row of a slot: its seed's ``Blueprint`` value, or ``Blueprint.NOOP`` (0) without a seed."""
    return int(report.seed.blueprint if report.seed is not None else Blueprint.NOOP)


def _fill_base(row: FloatArray, observation: EnvObservation) -> None:
    _fill_progress(row, observation)
    _fill_histories(row, observation)
    _fill_stage_counts(row, observation.slots)
    _fill_germinations(row, observation.germinations_remaining)
    _fill_last_action(row, observation.last_action)


def _is_finite_number(value: object) -> bool:
    """False for None, NaN and infinities: exactly the values ``safe()`` replaces by its default."""
    return safe(value, 0.0) == safe(value, 1.0)


def _loss_feature(loss: object) -> float:
    if not _is_finite_number(loss):
        return NONFINITE_LOSS
    return symlog(safe(loss)) / LOG_SCALE


def _accuracy_feature(accuracy: object) -> float:
    return safe(accuracy, 0.0, 100.0) / 100.0


def _fill_progress(row: FloatArray, observation: EnvObservation) -> None:
    row[BASE_LAYOUT["epoch_progress"].start] = safe(observation.epoch / observation.max_epochs, 0.0, 1.0)
    row[BASE_LAYOUT["val_loss"].start] = _loss_feature(observation.val_loss)
    row[BASE_LAYOUT["val_loss_finite"].start] = 1.0 if _is_finite_number(observation.val_loss) else 0.0
    row[BASE_LAYOUT["val_accuracy"].start] = _accuracy_feature(observation.val_accuracy)


def _fill_histories(row: FloatArray, observation: EnvObservation) -> None:
    """Oldest first, newest last (right-aligned); epochs not observed yet hold ``HISTORY_SENTINEL`` on the left."""
    for field, history, encode in (
        ("loss_history", observation.loss_history, _loss_feature),
        ("accuracy_history", observation.accuracy_history, _accuracy_feature),
    ):
        columns = BASE_LAYOUT[field]
        unseen = HISTORY_LENGTH - len(history)
        row[columns.start : columns.start + unseen] = HISTORY_SENTINEL
        for offset, value in enumerate(history):
            row[columns.start + unseen + offset] = encode(value)


def _fill_stage_counts(row: FloatArray, slots: Sequence[SlotReport]) -> None:
    start = BASE_LAYOUT["stage_counts"].start
    share = 1.0 / len(slots)
    for report in slots:
        row[start + int(report.stage)] += share


def _fill_germinations(row: FloatArray, remaining: int) -> None:
    row[BASE_LAYOUT["germination_available"].start] = 1.0 if remaining > 0 else 0.0
    row[BASE_LAYOUT["germinations_remaining"].start] = safe(remaining, 0.0, GERMINATION_SCALE) / GERMINATION_SCALE


def _fill_last_action(row: FloatArray, last_action: LastAction | None) -> None:
    if last_action is None:
        return
    row[BASE_LAYOUT["last_action_success"].start] = 1.0 if last_action.success else 0.0
    row[BASE_LAYOUT["last_op"].start + int(last_action.op)] = 1.0


def _fill_slot(block: FloatArray, report: SlotReport, observation: EnvObservation) -> None:
    block[SLOT_LAYOUT["stage"].start + int(report.stage)] = 1.0
    block[SLOT_LAYOUT["dwell_remaining"].start] = safe(report.dwell_remaining, 0.0, _LONGEST_DWELL) / _LONGEST_DWELL
    if report.seed is None:
        return
    block[SLOT_LAYOUT["present"].start] = 1.0
    _fill_alpha(block, report.seed)
    _fill_contribution(block, report.seed)
    _fill_gradients(block, report.seed)
    _fill_age(block, report.seed, observation)
    _fill_accuracy_deltas(block, report.seed, observation)


def _fill_alpha(block: FloatArray, seed: SeedReport) -> None:
    alpha = seed.alpha
    block[SLOT_LAYOUT["alpha"].start] = safe(alpha.value, 0.0, 1.0)
    block[SLOT_LAYOUT["alpha_target"].start] = safe(alpha.target, 0.0, 1.0)
    block[SLOT_LAYOUT["alpha_mode"].start + int(alpha.mode)] = 1.0
    if alpha.steps_total > 0:
        block[SLOT_LAYOUT["alpha_progress"].start] = safe(alpha.steps_done / alpha.steps_total, 0.0, 1.0)
    remaining = alpha.steps_total - alpha.steps_done
    block[SLOT_LAYOUT["alpha_steps_remaining"].start] = safe(remaining, 0.0, _LONGEST_RAMP) / _LONGEST_RAMP
    block[SLOT_LAYOUT["tempo"].start] = safe(TEMPO_EPOCHS[seed.tempo], 0.0, _LONGEST_TEMPO) / _LONGEST_TEMPO
    _, operator = STYLE_TABLE[seed.style]
    block[SLOT_LAYOUT["blend_operator"].start + int(operator)] = 1.0


def _points(value: object) -> float:
    """Percentage points / POINTS_SCALE, clipped to [-1, 1] (None/NaN -> 0)."""
    return safe(value, 0.0, POINTS_SCALE) / POINTS_SCALE


def _fill_contribution(block: FloatArray, seed: SeedReport) -> None:
    metrics = seed.metrics
    block[SLOT_LAYOUT["contribution"].start] = _points(metrics.contribution)
    block[SLOT_LAYOUT["contribution_at_full_alpha"].start] = _points(metrics.contribution_at_full_alpha)
    block[SLOT_LAYOUT["contribution_velocity"].start] = _points(metrics.contribution_velocity)
    if metrics.epochs_since_measurement is not None:
        staleness = safe(metrics.epochs_since_measurement, 0.0)
        block[SLOT_LAYOUT["counterfactual_freshness"].start] = 1.0 / (1.0 + max(0.0, staleness))


def _fill_gradients(block: FloatArray, seed: SeedReport) -> None:
    metrics = seed.metrics
    block[SLOT_LAYOUT["gradient_norm"].start] = symlog(safe(metrics.gradient_norm)) / LOG_SCALE
    block[SLOT_LAYOUT["gradient_health"].start] = safe(metrics.gradient_health, UNMEASURED_HEALTH, 1.0)


def _fill_age(block: FloatArray, seed: SeedReport, observation: EnvObservation) -> None:
    horizon = float(observation.max_epochs)
    block[SLOT_LAYOUT["epochs_in_stage"].start] = safe(seed.epochs_in_stage, 0.0, horizon) / horizon
    block[SLOT_LAYOUT["seed_age"].start] = safe(seed.age_epochs, 0.0, horizon) / horizon
    block[SLOT_LAYOUT["can_prune"].start] = 1.0 if seed.age_epochs >= MIN_PRUNE_AGE else 0.0
    block[SLOT_LAYOUT["gate_blocked"].start] = safe(seed.gate_blocked_epochs, 0.0, horizon) / horizon
    host = max(1, observation.host_param_count)
    block[SLOT_LAYOUT["param_ratio"].start] = symlog(safe(seed.param_count / host)) / LOG_SCALE


def _fill_accuracy_deltas(block: FloatArray, seed: SeedReport, observation: EnvObservation) -> None:
    accuracy = safe(observation.val_accuracy, 0.0, 100.0)
    metrics = seed.metrics
    for field, reference in (
        ("accuracy_since_stage_entry", metrics.accuracy_at_stage_entry),
        ("accuracy_since_germination", metrics.accuracy_at_germination),
    ):
        if reference is not None:
            block[SLOT_LAYOUT[field].start] = _points(accuracy - safe(reference, accuracy, 100.0))
