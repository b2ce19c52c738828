"""Counterfactual contributions: the accuracy of K alpha configurations, fused into one batched forward or run
as K forwards (``CounterfactualBatching``).

contribution(slot) = accuracy with current alphas - accuracy with that slot's alpha forced to 0 (percentage
points). A seed still in TRAINING (alpha 0) gets the alpha = 1 probe instead: what it would add if blended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from esper.kasmina.slot import SeedSlot
from esper.leyline import ConfigError, SeedStage, SlotId


class CounterfactualBatching(StrEnum):
    """How a plan's K configurations are run. FUSED: one forward of K stacked copies of the batch (one kernel
    launch per layer for all K: the win on a GPU, where launches dominate small hosts). SEPARATE: K forwards of
    one batch each (on a CPU a forward costs its arithmetic, so fusing saves only Python dispatch, and K-times
    larger activations can cost more per sample: docs/performance.md measures a 4x batch at 0.5-1.7x the four
    separate passes). AUTO: SEPARATE on the CPU, FUSED on any accelerator. The outputs are the same either way."""

    AUTO = "auto"
    FUSED = "fused"
    SEPARATE = "separate"

    def resolve(self, device: torch.device) -> CounterfactualBatching:
        """FUSED or SEPARATE: what AUTO means on ``device``; the other two stand for themselves."""
        if self is not CounterfactualBatching.AUTO:
            return self
        return CounterfactualBatching.SEPARATE if device.type == "cpu" else CounterfactualBatching.FUSED


class RowKind(StrEnum):
    CURRENT = "current"
    ALPHA_ZERO = "alpha=0"
    ALPHA_FULL = "alpha=1"


@dataclass(frozen=True, slots=True)
class CounterfactualRow:
    """One alpha configuration: the current alphas, or one seed's alpha forced to 0 or to 1."""

    kind: RowKind
    slot_index: int | None = None
    slot_id: SlotId | None = None
    #: The germination the row measures; a row whose seed has since been replaced is ignored when recorded.
    seed_serial: int | None = None

    @property
    def label(self) -> str:
        return self.kind.value if self.slot_id is None else f"{self.slot_id} {self.kind.value}"


@dataclass(frozen=True, slots=True)
class CounterfactualPlan:
    """``alphas``: [K, num_slots] float32 on the CPU, NaN = keep the slot's current alpha. Row 0 is CURRENT."""

    alphas: Tensor
    rows: tuple[CounterfactualRow, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(row.label for row in self.rows)


def build_plan(slots: Sequence[SeedSlot]) -> CounterfactualPlan:
    """Row 0 current; one alpha = 0 row per seed that affects the output (alpha > 0 or fossilized); one
    alpha = 1 row per seed in TRAINING."""
    rows = [CounterfactualRow(RowKind.CURRENT)]
    for index, slot in enumerate(slots):
        if slot.seed is not None and slot.affects_output:
            rows.append(CounterfactualRow(RowKind.ALPHA_ZERO, index, slot.slot_id, slot.seed.serial))
    for index, slot in enumerate(slots):
        if slot.seed is not None and slot.stage is SeedStage.TRAINING:
            rows.append(CounterfactualRow(RowKind.ALPHA_FULL, index, slot.slot_id, slot.seed.serial))
    alphas = torch.full((len(rows), len(slots)), math.nan)
    for k, row in enumerate(rows):
        if row.slot_index is not None:
            alphas[k, row.slot_index] = 0.0 if row.kind is RowKind.ALPHA_ZERO else 1.0
    return CounterfactualPlan(alphas, tuple(rows))


def check_alphas(alphas: Tensor, num_slots: int) -> Tensor:
    """``alphas`` as a float32 CPU table after checking it is [K >= 1, num_slots] with values in [0, 1] or NaN."""
    plan = alphas.detach().to("cpu", torch.float32)
    if plan.dim() != 2 or plan.shape[1] != num_slots or plan.shape[0] < 1:
        raise ConfigError(f"alphas must be [K >= 1, num_slots={num_slots}], got {tuple(alphas.shape)}")
    given = ~torch.isnan(plan)
    if bool(((plan[given] < 0.0) | (plan[given] > 1.0)).any()):
        raise ConfigError("alpha overrides must be in [0, 1] (or NaN to keep the current alpha)")
    return plan


def per_sample_alphas(
    alphas: Tensor, slots: Sequence[SeedSlot], batch_size: int, site_ndim: int, like: Tensor
) -> dict[int, Tensor]:
    """The override of every wired slot some row overrides: [K * batch_size, 1, ...] (rank ``site_ndim``),
    row-major in K like the stacked batch, NaN replaced by the slot's current alpha."""
    plan = check_alphas(alphas, len(slots))
    overridden = (~torch.isnan(plan)).any(dim=0).tolist()
    overrides: dict[int, Tensor] = {}
    for index, slot in enumerate(slots):
        if not (overridden[index] and slot.wired and slot.seed is not None):
            continue
        column = torch.nan_to_num(plan[:, index], nan=slot.seed.alpha.value)
        per_sample = column.to(device=like.device, dtype=like.dtype).repeat_interleave(batch_size)
        overrides[index] = per_sample.view(-1, *([1] * (site_ndim - 1)))
    return overrides


def record_counterfactuals(
    plan: CounterfactualPlan, slots: Sequence[SeedSlot], accuracies: Tensor | Sequence[float]
) -> None:
    """Store each row's result (accuracy in percent, one per row) into the seeds' metrics."""
    values = accuracies.detach().cpu().tolist() if isinstance(accuracies, Tensor) else list(accuracies)
    if len(values) != len(plan.rows):
        raise ConfigError(f"need one accuracy per plan row ({len(plan.rows)}), got {len(values)}")
    if plan.rows[0].kind is not RowKind.CURRENT:
        raise ConfigError("row 0 of a counterfactual plan must be the current configuration")
    current = float(values[0])
    for row, value in zip(plan.rows[1:], values[1:], strict=True):
        if row.slot_index is None:
            continue
        seed = slots[row.slot_index].seed
        if seed is None or seed.serial != row.seed_serial:
            continue
        if row.kind is RowKind.ALPHA_ZERO:
            seed.record_contribution(current - float(value))
        else:
            seed.record_full_alpha_contribution(float(value) - current)


def count_correct(logits: Tensor, targets: Tensor) -> Tensor:
    """Correct predictions per configuration: logits [K, B, ..., classes], targets [B, ...] -> [K] int64 (on
    device). A classifier gives [K, B, classes] and [B]; a language model [K, B, T, vocab] and [B, T], where every
    position's next-token prediction counts."""
    if logits.dim() < 3 or targets.shape != logits.shape[1:-1]:
        raise ConfigError(
            f"need logits [K, B, ..., classes] and targets [B, ...], got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    return (logits.argmax(dim=-1) == targets.unsqueeze(0)).flatten(1).sum(dim=1)
