"""Batch encoding of observations into the policy's input tensors (layout in ``feature_layout``).

The batch is read once into columns (``observation_columns``); the features are then a fixed number of array
operations over all envs, slots or seeds together (fields that share a transform are transformed as one block),
written into one float32 array that becomes the tensor. Every value follows leyline's ``safe()``: a NaN, an
infinity or a missing value becomes a documented default and can never poison the features or the running
normalizer. A loss is the exception to "default": a NaN/inf loss means the model diverged, so it encodes as
``NONFINITE_LOSS``, above every finite loss, never as the 0 of a perfect one (and ``val_loss_finite`` flags the
current one).

The arithmetic is float64 in the order the scalar definitions use, and ``symlog`` calls ``math.log1p`` itself, so
the features are bit for bit those of the scalar definitions (``safe(x, d, b) / b`` is computed as ``x / b``
clipped to [-1, 1], which is the same number: division is monotonic and ``b / b`` is exactly 1).
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


def _base_range(name: str) -> list[int]:
    return list(range(BASE_LAYOUT[name].start, BASE_LAYOUT[name].stop))


_HISTORY = list(range(HISTORY_LENGTH))
_HISTORY_COLUMNS = np.arange(HISTORY_LENGTH)
#: Env columns scaled into [-1, 1] (``safe(x, 0, bound) / bound``), where they go, and their bounds. Epoch
#: progress is divided by ``max_epochs`` first; the accuracy history comes last (its unseen epochs get the
#: sentinel).
_BOUNDED_ENV = [
    col.EPOCH,
    col.GERMINATIONS_REMAINING,
    col.VAL_ACCURACY,
    *(col.ACCURACY_HISTORY.start + i for i in _HISTORY),
]
_BOUNDED_ENV_FEATURES = [
    _base("epoch_progress"),
    _base("germinations_remaining"),
    _base("val_accuracy"),
    *_base_range("accuracy_history"),
]
_BOUNDED_ENV_SCALE = np.array([1.0, GERMINATION_SCALE, 100.0, *[100.0] * HISTORY_LENGTH])
#: The current loss and the loss history, and where they go.
_LOSSES = [col.VAL_LOSS, *(col.LOSS_HISTORY.start + i for i in _HISTORY)]
_LOSS_FEATURES = [_base("val_loss"), *_base_range("loss_history")]

#: Seed columns ``ALPHA_VALUE`` ... ``ACCURACY_AT_GERMINATION`` scaled into [-1, 1], where they go, their bounds
#: and the encoding of a non-finite value (after the ramp, tempo, age and accuracy columns are derived in place).
_BOUNDED_SEED_FEATURES = [
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
]
_BOUNDED_SEED_SCALE = np.array(
    [1.0, 1.0, 1.0, _LONGEST_RAMP, _LONGEST_TEMPO, *[POINTS_SCALE] * 3, 1.0, 1.0, 1.0, 1.0, *[POINTS_SCALE] * 2]
)
_BOUNDED_SEED_FALLBACK = np.zeros(len(_BOUNDED_SEED_FEATURES))
_BOUNDED_SEED_FALLBACK[col.GRADIENT_HEALTH] = UNMEASURED_HEALTH
_AGES = slice(col.EPOCHS_IN_STAGE, col.GATE_BLOCKED_EPOCHS + 1)
_REFERENCES = slice(col.ACCURACY_AT_STAGE_ENTRY, col.ACCURACY_AT_GERMINATION + 1)
#: The other per-seed features, in the order ``_fill_seeds`` computes them.
_OTHER_SEED_FEATURES = [
    _slot(name) for name in ("present", "can_prune", "counterfactual_freshness", "gradient_norm", "param_ratio")
]


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
    _fill_base(features, columns)
    slots = np.zeros((envs * num_slots, SLOT_FEATURES), dtype=np.float32)
    _fill_slots(slots, columns)
    features[:, BASE_FEATURES:] = slots.reshape(envs, num_slots * SLOT_FEATURES)
    blueprints = np.zeros(envs * num_slots, dtype=np.int64)
    blueprints[columns.seed_slots] = columns.seeds[:, col.BLUEPRINT]
    return FeatureBatch(torch.from_numpy(features), torch.from_numpy(blueprints.reshape(envs, num_slots)))


def scaled(values: FloatArray, bounds: FloatArray | float, fallback: FloatArray | float = 0.0) -> FloatArray:
    """``safe(x, default, bound) / bound`` elementwise for positive finite ``bounds``: ``x / bound`` clipped to
    [-1, 1], and ``fallback`` (the encoded default) where ``x`` is NaN or infinite."""
    ratios = values / bounds
    finite = np.isfinite(ratios)
    np.minimum(ratios, 1.0, out=ratios)
    np.maximum(ratios, -1.0, out=ratios)
    return np.where(finite, ratios, fallback)


def symlog(values: FloatArray) -> FloatArray:
    """sign(x) * log(1 + |x|): compresses large magnitudes, keeps sign and small values (``math.log1p`` per
    value, driven from C)."""
    magnitudes = np.fromiter(map(math.log1p, np.abs(values).ravel().tolist()), dtype=np.float64, count=values.size)
    return np.copysign(magnitudes.reshape(values.shape), values)


def _clipped(values: FloatArray, bound: float) -> FloatArray:
    return np.minimum(np.maximum(values, -bound), bound)


def _guarded(values: FloatArray) -> FloatArray:
    """``safe(x)``: non-finite values become 0, the rest is clipped to ``SAFE_BOUND``."""
    return np.where(np.isfinite(values), _clipped(values, SAFE_BOUND), 0.0)


def _unseen(seen: IntArray) -> npt.NDArray[np.bool_]:
    """``[envs, HISTORY_LENGTH]``: the history columns left of a history of ``seen`` values."""
    return _HISTORY_COLUMNS < (HISTORY_LENGTH - seen)[:, None]


def _fill_base(features: Float32Array, columns: ObservationColumns) -> None:
    env = columns.env
    bounded = env[:, _BOUNDED_ENV]
    bounded[:, 0] /= env[:, col.MAX_EPOCHS]
    encoded = scaled(bounded, _BOUNDED_ENV_SCALE)
    encoded[:, 3:][_unseen(columns.accuracy_seen)] = HISTORY_SENTINEL
    features[:, _BOUNDED_ENV_FEATURES] = encoded
    losses = env[:, _LOSSES]
    finite = np.isfinite(losses)
    encoded = np.where(finite, symlog(_guarded(losses)) / LOG_SCALE, NONFINITE_LOSS)
    encoded[:, 1:][_unseen(columns.loss_seen)] = HISTORY_SENTINEL
    features[:, _LOSS_FEATURES] = encoded
    features[:, _base("val_loss_finite")] = finite[:, 0]
    features[:, _base("germination_available")] = env[:, col.GERMINATIONS_REMAINING] > 0
    features[:, BASE_LAYOUT["stage_counts"]] = _stage_shares(columns)
    acted = np.flatnonzero(columns.last_op >= 0)
    features[acted, _base("last_action_success")] = columns.last_success[acted]
    features[acted, _base("last_op") + columns.last_op[acted]] = 1.0


def _stage_shares(columns: ObservationColumns) -> Float32Array:
    """``[envs, stages]``: each slot adds ``1 / num_slots`` (in float32, as a running sum would) to its stage."""
    envs, num_slots, stages = columns.envs, columns.num_slots, len(SeedStage)
    cells = _stage_cells(envs, num_slots) + columns.stage_and_dwell[:, 0]
    return _shares(num_slots)[np.bincount(cells, minlength=envs * stages).reshape(envs, stages)]


@cache
def _shares(num_slots: int) -> Float32Array:
    """``[num_slots + 1]``: the float32 running sum of ``k`` times ``1 / num_slots``, for every count ``k``."""
    shares = np.zeros(num_slots + 1, dtype=np.float32)
    shares[1:] = np.cumsum(np.full(num_slots, 1.0 / num_slots, dtype=np.float32), dtype=np.float32)
    shares.flags.writeable = False
    return shares


@cache
def _stage_cells(envs: int, num_slots: int) -> IntArray:
    """``[envs * num_slots]``: the first cell of each slot's env in a flat ``[envs, stages]`` table."""
    cells = np.repeat(np.arange(envs) * len(SeedStage), num_slots)
    cells.flags.writeable = False
    return cells


def _fill_slots(slots: Float32Array, columns: ObservationColumns) -> None:
    stage, dwell = columns.stage_and_dwell[:, 0], columns.stage_and_dwell[:, 1]
    slots[:, _slot("dwell_remaining")] = scaled(dwell.astype(np.float64), _LONGEST_DWELL)
    seeded = columns.seed_slots
    seeds = columns.seeds
    every = np.arange(stage.size)
    rows = np.concatenate((every, seeded, seeded))
    one_hot = np.concatenate(
        (
            _slot("stage") + stage,
            _slot("alpha_mode") + seeds[:, col.ALPHA_MODE].astype(np.int64),
            _slot("blend_operator") + _BLEND_OPERATOR[seeds[:, col.STYLE].astype(np.int64)],
        )
    )
    slots[rows, one_hot] = 1.0
    if seeded.size:
        _fill_seeds(slots, columns)


def _fill_seeds(slots: Float32Array, columns: ObservationColumns) -> None:
    seeds, seeded = columns.seeds, columns.seed_slots
    env = columns.env[seeded // columns.num_slots]
    bounded = seeds[:, : col.ACCURACY_AT_GERMINATION + 1].copy()
    done, total = bounded[:, col.ALPHA_STEPS_DONE], bounded[:, col.ALPHA_STEPS_TOTAL]
    remaining = total - done
    np.divide(done, total, out=done, where=total > 0)  # no ramp (0 of 0 steps): progress stays 0
    bounded[:, col.ALPHA_STEPS_TOTAL] = remaining
    bounded[:, col.TEMPO] = _TEMPO_EPOCHS[bounded[:, col.TEMPO].astype(np.int64)]
    bounded[:, _AGES] /= env[:, col.MAX_EPOCHS, None]
    accuracy = np.where(np.isfinite(env[:, col.VAL_ACCURACY]), _clipped(env[:, col.VAL_ACCURACY], 100.0), 0.0)
    references = bounded[:, _REFERENCES]
    references = np.where(np.isfinite(references), _clipped(references, 100.0), accuracy[:, None])
    bounded[:, _REFERENCES] = accuracy[:, None] - references
    slots[seeded[:, None], _BOUNDED_SEED_FEATURES] = scaled(bounded, _BOUNDED_SEED_SCALE, _BOUNDED_SEED_FALLBACK)
    others = np.empty((seeded.size, len(_OTHER_SEED_FEATURES)))
    others[:, 0] = 1.0
    others[:, 1] = seeds[:, col.AGE_EPOCHS] >= MIN_PRUNE_AGE
    staleness = seeds[:, col.EPOCHS_SINCE_MEASUREMENT]
    others[:, 2] = np.where(np.isfinite(staleness), 1.0 / (1.0 + np.maximum(0.0, _clipped(staleness, SAFE_BOUND))), 0.0)
    logged = seeds[:, [col.GRADIENT_NORM, col.PARAM_COUNT]]
    logged[:, 1] /= np.maximum(1.0, env[:, col.HOST_PARAM_COUNT])
    others[:, 3:] = symlog(_guarded(logged)) / LOG_SCALE
    slots[seeded[:, None], _OTHER_SEED_FEATURES] = others
