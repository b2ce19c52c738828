"""The observation feature layout: which column means what, as named index ranges, and the schema version.

The layout is declared once as ordered ``(field, width)`` tuples; every index range, the width formula and the
README table derive from these two tuples. Changing a field, its width, its scale or its order changes what a
trained policy sees, so it must bump ``FEATURE_SCHEMA_VERSION`` (checkpoints refuse another version).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from esper.leyline import HISTORY_LENGTH, AlphaMode, BlendOperator, Blueprint, ConfigError, LifecycleOp, SeedStage

#: Version of the feature layout and scales below, stored in every policy checkpoint.
FEATURE_SCHEMA_VERSION = 3

#: Encoded value of a history entry that has not been observed yet (an observed entry is never negative).
HISTORY_SENTINEL = -1.0

#: Range of the encoded blueprint indices (each slot's ``Blueprint`` value, NOOP = 0 = no seed), so the number of
#: rows of the policy's blueprint embedding table.
NUM_BLUEPRINT_EMBEDDINGS = len(Blueprint)

#: Per-env fields, in column order.
BASE_FIELDS: tuple[tuple[str, int], ...] = (
    ("epoch_progress", 1),  # epoch / max_epochs
    ("val_loss", 1),  # symlog(loss) / 7; NONFINITE_LOSS (2.0, above every finite loss) if NaN/inf
    ("val_accuracy", 1),  # accuracy% / 100
    ("loss_history", HISTORY_LENGTH),  # as val_loss, oldest first, newest last; HISTORY_SENTINEL if unseen
    ("accuracy_history", HISTORY_LENGTH),  # accuracy% / 100, same ordering and sentinel
    ("stage_counts", len(SeedStage)),  # slots in each stage / number of slots (SeedStage order)
    ("germination_available", 1),  # 1 if germinations_remaining > 0 (the seed cap is part of the GERMINATE mask)
    ("germinations_remaining", 1),  # min(remaining, 10) / 10
    ("last_action_success", 1),  # 1 if the previous action changed something, else 0
    ("last_op", len(LifecycleOp)),  # one-hot of the previous op (all zero on the first step)
    ("val_loss_finite", 1),  # 1 if the current validation loss is finite, 0 if NaN/inf (the model diverged)
)

#: Per-slot fields, in column order; repeated for every slot of the slot config (row-major order).
SLOT_FIELDS: tuple[tuple[str, int], ...] = (
    ("present", 1),  # 1 if a seed module exists (live or fossilized)
    ("stage", len(SeedStage)),  # one-hot of the slot's stage (DORMANT = empty)
    ("alpha", 1),  # current blend weight in [0, 1]
    ("alpha_target", 1),  # where the alpha controller is heading, in [0, 1]
    ("alpha_mode", len(AlphaMode)),  # one-hot HOLD / UP / DOWN (ramping blocks PRUNE and SET_ALPHA_TARGET)
    ("alpha_progress", 1),  # steps_done / steps_total of the current ramp (0 without a ramp)
    ("alpha_steps_remaining", 1),  # (steps_total - steps_done) / longest ramp
    ("tempo", 1),  # blending epochs of the chosen tempo / longest tempo
    ("blend_operator", len(BlendOperator)),  # one-hot ADD / MULTIPLY / GATE of the seed's style
    ("contribution", 1),  # counterfactual contribution (pp) / 10, clipped to [-1, 1]; 0 if never measured
    ("contribution_at_full_alpha", 1),  # the alpha = 1 probe (pp) / 10, clipped to [-1, 1]
    ("contribution_velocity", 1),  # change of contribution per epoch (pp) / 10, clipped to [-1, 1]
    ("counterfactual_freshness", 1),  # 1 / (1 + epochs since measured); 0 if never measured
    ("gradient_norm", 1),  # symlog(norm) / 7; 0 if not measured
    ("gradient_health", 1),  # health in [0, 1]; -1 if not measured
    ("epochs_in_stage", 1),  # epochs in the current stage / max_epochs
    ("seed_age", 1),  # epochs since germination / max_epochs
    ("dwell_remaining", 1),  # epochs left in a failure stage / longest failure dwell
    ("param_ratio", 1),  # symlog(seed params / host params) / 7
    ("can_prune", 1),  # 1 if seed age >= MIN_PRUNE_AGE (part of the PRUNE mask)
    ("accuracy_since_stage_entry", 1),  # (accuracy - accuracy at stage entry) / 10, clipped to [-1, 1]
    ("accuracy_since_germination", 1),  # (accuracy - accuracy at germination) / 10, clipped to [-1, 1]
    ("gate_blocked", 1),  # epochs a TRAINING seed's BLENDING gate has refused it past its dwell / max_epochs
)


def _slices(fields: tuple[tuple[str, int], ...]) -> Mapping[str, slice]:
    """Consecutive index ranges of ``fields``, in declaration order."""
    ranges: dict[str, slice] = {}
    start = 0
    for name, width in fields:
        ranges[name] = slice(start, start + width)
        start += width
    return MappingProxyType(ranges)


#: Column ranges within the base block (columns ``0 .. BASE_FEATURES-1``).
BASE_LAYOUT: Mapping[str, slice] = _slices(BASE_FIELDS)
#: Column ranges within one slot block (slot ``i`` starts at ``BASE_FEATURES + i * SLOT_FEATURES``).
SLOT_LAYOUT: Mapping[str, slice] = _slices(SLOT_FIELDS)

BASE_FEATURES = sum(width for _, width in BASE_FIELDS)
SLOT_FEATURES = sum(width for _, width in SLOT_FIELDS)


def feature_dim(num_slots: int) -> int:
    """Width of the feature vector: ``BASE_FEATURES + SLOT_FEATURES * num_slots``."""
    if num_slots < 1:
        raise ConfigError(f"need at least one slot, got num_slots={num_slots}")
    return BASE_FEATURES + SLOT_FEATURES * num_slots


def slot_block(slot_index: int) -> slice:
    """Columns of slot ``slot_index`` (its position in the slot config)."""
    start = BASE_FEATURES + SLOT_FEATURES * slot_index
    return slice(start, start + SLOT_FEATURES)
