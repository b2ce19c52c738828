"""Batch encoding of observations into the policy's input tensors (layout in ``feature_layout``).

The batch is read once into columns (``observation_columns``); one compiled kernel (``esper.tamiyo.compiled``)
then walks every env, its slots and their seeds and writes one float32 row per env, which becomes the tensor.
Written as numpy array operations, the same formulas took some 80 calls per batch, each paying microseconds of
dispatch for a few hundred values: at 8 envs, more than the policy network's whole forward (issue 19).

Every value follows leyline's ``safe()``: a NaN, an infinity or a missing value becomes a documented default and
can never poison the features or the running normalizer. A loss is the exception to "default": a NaN/inf loss
means the model diverged, so it encodes as ``NONFINITE_LOSS``, above every finite loss, never as the 0 of a
perfect one (and ``val_loss_finite`` flags the current one).

The arithmetic is float64 in the order the scalar definitions use, with the C library's ``log1p`` (the one
``math.log1p`` calls), so the features are bit for bit those of the scalar definitions (``safe(x, d, b) / b`` is
computed as ``x / b`` clipped to [-1, 1], which is the same number: division is monotonic and ``b / b`` is
exactly 1). ``_larger`` and ``_smaller`` keep numpy's rule that a NaN wins, where Python's ``max`` would not.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from functools import cache
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
    EnvObservation,
    SeedStage,
    SlotConfig,
    safe,
)
from esper.tamiyo.compiled import compiled
from esper.tamiyo.encoding import observation_columns as col
from esper.tamiyo.encoding.feature_layout import (
    BASE_FEATURES,
    BASE_LAYOUT,
    HISTORY_SENTINEL,
    SLOT_FEATURES,
    SLOT_LAYOUT,
    feature_dim,
)
from esper.tamiyo.encoding.observation_columns import ObservationColumns, read_columns

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
#: The largest magnitude ``safe()`` lets through by default (what it clips the largest float to).
SAFE_BOUND = safe(sys.float_info.max)

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_LONGEST_RAMP = float(max(*TEMPO_EPOCHS.values(), *ALPHA_SPEED_TICKS.values()))
_LONGEST_TEMPO = float(max(TEMPO_EPOCHS.values()))
_LONGEST_DWELL = float(max(1, *FAILURE_DWELL_EPOCHS.values()))
#: Lookup tables indexed by enum value: blending epochs of each tempo, blend operator of each style.
_TEMPO_EPOCHS = np.array([TEMPO_EPOCHS[tempo] for tempo in sorted(TEMPO_EPOCHS)], dtype=np.float64)
_BLEND_OPERATOR = np.array([int(STYLE_TABLE[style][1]) for style in sorted(STYLE_TABLE)], dtype=np.int64)


def _base(name: str) -> int:
    return int(BASE_LAYOUT[name].start)


def _slot(name: str) -> int:
    return int(SLOT_LAYOUT[name].start)


_STAGES = len(SeedStage)
#: Columns of the base block the kernel writes (constants compiled into it).
_EPOCH_PROGRESS, _VAL_LOSS, _VAL_ACCURACY = _base("epoch_progress"), _base("val_loss"), _base("val_accuracy")
_LOSS_HISTORY, _ACCURACY_HISTORY = _base("loss_history"), _base("accuracy_history")
_STAGE_COUNTS, _GERMINATION_AVAILABLE = _base("stage_counts"), _base("germination_available")
_GERMINATIONS_REMAINING, _LAST_ACTION_SUCCESS = _base("germinations_remaining"), _base("last_action_success")
_LAST_OP, _VAL_LOSS_FINITE = _base("last_op"), _base("val_loss_finite")
#: Columns within a slot block.
_PRESENT, _STAGE, _ALPHA_MODE, _BLEND_OPERATOR_COLUMN = (
    _slot("present"),
    _slot("stage"),
    _slot("alpha_mode"),
    _slot("blend_operator"),
)
_DWELL_REMAINING, _FRESHNESS, _GRADIENT_NORM = (
    _slot("dwell_remaining"),
    _slot("counterfactual_freshness"),
    _slot("gradient_norm"),
)
_PARAM_RATIO, _CAN_PRUNE = _slot("param_ratio"), _slot("can_prune")
#: Where the histories start among the env columns.
_ENV_LOSS_HISTORY, _ENV_ACCURACY_HISTORY = col.LOSS_HISTORY.start, col.ACCURACY_HISTORY.start
#: Seed columns ``ALPHA_VALUE`` ... ``ACCURACY_AT_GERMINATION`` are scaled into [-1, 1] after the ramp, tempo, age
#: and accuracy columns are derived in place: where each goes, its bound and the encoding of a non-finite value.
_BOUNDED_SEED_COLUMNS = col.ACCURACY_AT_GERMINATION + 1
_BOUNDED_SEED_FEATURES = np.array(
    [
        _slot(name)
        for name in (
            "alpha",
            "alpha_target",
            "alpha_progress",
            "alpha_steps_remaining",
            "tempo",
            "contribution",
            "contribution_at_full_alpha",
            "contribution_velocity",
            "gradient_health",
            "epochs_in_stage",
            "seed_age",
            "gate_blocked",
            "accuracy_since_stage_entry",
            "accuracy_since_germination",
        )
    ],
    dtype=np.int64,
)
_BOUNDED_SEED_SCALE = np.array(
    [1.0, 1.0, 1.0, _LONGEST_RAMP, _LONGEST_TEMPO, *[POINTS_SCALE] * 3, 1.0, 1.0, 1.0, 1.0, *[POINTS_SCALE] * 2]
)
_BOUNDED_SEED_FALLBACK = np.zeros(_BOUNDED_SEED_COLUMNS)
_BOUNDED_SEED_FALLBACK[col.GRADIENT_HEALTH] = UNMEASURED_HEALTH


class FeatureBatch(NamedTuple):
    """Encoded observations (CPU tensors).

    - ``features``: ``[batch, feature_dim]`` float32, raw (the policy normalizes them);
    - ``blueprint_indices``: ``[batch, num_slots]`` int64, the ``Blueprint`` value of each slot's seed
      (0 = ``Blueprint.NOOP`` = no seed, the embedding's null row).
    """

    features: torch.Tensor
    blueprint_indices: torch.Tensor


def encode_features(observations: Sequence[EnvObservation], slot_config: SlotConfig) -> FeatureBatch:
    """Features and blueprint indices of a batch of observations (one row per env)."""
    return encode_columns(read_columns(observations, slot_config))


def encode_columns(columns: ObservationColumns) -> FeatureBatch:
    """Features and blueprint indices of a batch already read into columns."""
    envs, num_slots = columns.envs, columns.num_slots
    features = np.zeros((envs, feature_dim(num_slots)), dtype=np.float32)
    blueprints = np.zeros((envs, num_slots), dtype=np.int64)
    _encode(
        columns.env,
        columns.stage_and_dwell,
        columns.seed_slots,
        columns.seeds,
        _shares(num_slots),
        features,
        blueprints,
    )
    return FeatureBatch(torch.from_numpy(features), torch.from_numpy(blueprints))


@cache
def _shares(num_slots: int) -> Float32Array:
    """``[num_slots + 1]``: the float32 running sum of ``k`` times ``1 / num_slots``, for every count ``k`` (a
    stage's share of the slots, as a running sum would add it up)."""
    shares = np.zeros(num_slots + 1, dtype=np.float32)
    shares[1:] = np.cumsum(np.full(num_slots, 1.0 / num_slots, dtype=np.float32), dtype=np.float32)
    shares.flags.writeable = False
    return shares


@compiled
def _larger(a: float, b: float) -> float:
    """``np.maximum(a, b)``: a NaN on either side wins."""
    return a if (a >= b or a != a) else b


@compiled
def _smaller(a: float, b: float) -> float:
    """``np.minimum(a, b)``: a NaN on either side wins."""
    return a if (a <= b or a != a) else b


@compiled
def _clipped(value: float, bound: float) -> float:
    return _smaller(_larger(value, -bound), bound)


@compiled
def _scaled(value: float, bound: float, fallback: float) -> float:
    """``safe(x, default, bound) / bound`` for a positive finite ``bound``: ``x / bound`` clipped to [-1, 1], and
    ``fallback`` (the encoded default) when that is NaN or infinite."""
    ratio = value / bound
    if not math.isfinite(ratio):
        return fallback
    return _larger(_smaller(ratio, 1.0), -1.0)


@compiled
def _log_scaled(value: float) -> float:
    """``symlog(safe(x)) / LOG_SCALE``: a non-finite value counts as 0, the rest is clipped to ``SAFE_BOUND``;
    symlog is sign(x) * log(1 + |x|)."""
    guarded = _clipped(value, SAFE_BOUND) if math.isfinite(value) else 0.0
    return math.copysign(math.log1p(abs(guarded)), guarded) / LOG_SCALE


@compiled
def _encode(
    env: FloatArray,
    stage_and_dwell: IntArray,
    seed_slots: IntArray,
    seeds: FloatArray,
    shares: Float32Array,
    features: Float32Array,
    blueprints: IntArray,
) -> None:
    """Write every env's base block and slot blocks into the zeroed ``features`` and each seed's blueprint into
    ``blueprints`` (the columns of ``ObservationColumns``; histories are right-aligned, unseen entries NaN)."""
    num_slots = blueprints.shape[1]
    counts = np.zeros(_STAGES, dtype=np.int64)
    for env_index in range(env.shape[0]):
        row = features[env_index]
        numbers = env[env_index]
        row[_EPOCH_PROGRESS] = _scaled(numbers[col.EPOCH] / numbers[col.MAX_EPOCHS], 1.0, 0.0)
        row[_GERMINATIONS_REMAINING] = _scaled(numbers[col.GERMINATIONS_REMAINING], float(GERMINATION_SCALE), 0.0)
        row[_GERMINATION_AVAILABLE] = 1.0 if numbers[col.GERMINATIONS_REMAINING] > 0 else 0.0
        row[_VAL_ACCURACY] = _scaled(numbers[col.VAL_ACCURACY], 100.0, 0.0)
        loss = numbers[col.VAL_LOSS]
        row[_VAL_LOSS] = _log_scaled(loss) if math.isfinite(loss) else NONFINITE_LOSS
        row[_VAL_LOSS_FINITE] = 1.0 if math.isfinite(loss) else 0.0
        unseen_losses = HISTORY_LENGTH - np.int64(numbers[col.LOSS_SEEN])
        unseen_accuracies = HISTORY_LENGTH - np.int64(numbers[col.ACCURACY_SEEN])
        for epoch in range(HISTORY_LENGTH):
            loss = numbers[_ENV_LOSS_HISTORY + epoch]
            if epoch < unseen_losses:
                row[_LOSS_HISTORY + epoch] = HISTORY_SENTINEL
            else:
                row[_LOSS_HISTORY + epoch] = _log_scaled(loss) if math.isfinite(loss) else NONFINITE_LOSS
            accuracy = numbers[_ENV_ACCURACY_HISTORY + epoch]
            row[_ACCURACY_HISTORY + epoch] = (
                HISTORY_SENTINEL if epoch < unseen_accuracies else _scaled(accuracy, 100.0, 0.0)
            )
        last_op = np.int64(numbers[col.LAST_OP])
        if last_op >= 0:
            row[_LAST_ACTION_SUCCESS] = 1.0 if numbers[col.LAST_SUCCESS] else 0.0
            row[_LAST_OP + last_op] = 1.0
        counts[:] = 0
        for slot in range(num_slots):
            stage = stage_and_dwell[env_index * num_slots + slot, 0]
            dwell = stage_and_dwell[env_index * num_slots + slot, 1]
            counts[stage] += 1
            block = BASE_FEATURES + slot * SLOT_FEATURES
            row[block + _STAGE + stage] = 1.0
            row[block + _DWELL_REMAINING] = _scaled(float(dwell), _LONGEST_DWELL, 0.0)
        for stage in range(_STAGES):
            row[_STAGE_COUNTS + stage] = shares[counts[stage]]
    bounded = np.empty(_BOUNDED_SEED_COLUMNS)
    for seed_index in range(seed_slots.shape[0]):
        flat_slot = seed_slots[seed_index]
        env_index, slot = flat_slot // num_slots, flat_slot % num_slots
        seed, numbers = seeds[seed_index], env[env_index]
        row = features[env_index]
        block = BASE_FEATURES + slot * SLOT_FEATURES
        blueprints[env_index, slot] = np.int64(seed[col.BLUEPRINT])
        row[block + _PRESENT] = 1.0
        row[block + _ALPHA_MODE + np.int64(seed[col.ALPHA_MODE])] = 1.0
        row[block + _BLEND_OPERATOR_COLUMN + _BLEND_OPERATOR[np.int64(seed[col.STYLE])]] = 1.0
        bounded[:] = seed[:_BOUNDED_SEED_COLUMNS]
        done, total = seed[col.ALPHA_STEPS_DONE], seed[col.ALPHA_STEPS_TOTAL]
        if total > 0:  # no ramp (0 of 0 steps): progress stays what was done, 0
            bounded[col.ALPHA_STEPS_DONE] = done / total
        bounded[col.ALPHA_STEPS_TOTAL] = total - done
        bounded[col.TEMPO] = _TEMPO_EPOCHS[np.int64(seed[col.TEMPO])]
        for age in range(col.EPOCHS_IN_STAGE, col.GATE_BLOCKED_EPOCHS + 1):
            bounded[age] = bounded[age] / numbers[col.MAX_EPOCHS]
        accuracy = numbers[col.VAL_ACCURACY]
        accuracy = _clipped(accuracy, 100.0) if math.isfinite(accuracy) else 0.0
        for reference in range(col.ACCURACY_AT_STAGE_ENTRY, col.ACCURACY_AT_GERMINATION + 1):
            then = bounded[reference]
            bounded[reference] = accuracy - (_clipped(then, 100.0) if math.isfinite(then) else accuracy)
        for column in range(_BOUNDED_SEED_COLUMNS):
            row[block + _BOUNDED_SEED_FEATURES[column]] = _scaled(
                bounded[column], _BOUNDED_SEED_SCALE[column], _BOUNDED_SEED_FALLBACK[column]
            )
        row[block + _CAN_PRUNE] = 1.0 if seed[col.AGE_EPOCHS] >= MIN_PRUNE_AGE else 0.0
        staleness = seed[col.EPOCHS_SINCE_MEASUREMENT]
        row[block + _FRESHNESS] = (
            1.0 / (1.0 + _larger(0.0, _clipped(staleness, SAFE_BOUND))) if math.isfinite(staleness) else 0.0
        )
        row[block + _GRADIENT_NORM] = _log_scaled(seed[col.GRADIENT_NORM])
        row[block + _PARAM_RATIO] = _log_scaled(seed[col.PARAM_COUNT] / _larger(1.0, numbers[col.HOST_PARAM_COUNT]))
