"""The governor (docs/design/governor.md): per env, keeps a known-good snapshot and says when to roll back to it.

Thresholds, chosen to mean something for a classifier:
- NaN/Inf validation loss: roll back at once.
- Collapse to random guessing: loss >= ``collapse_factor`` x ln(num_classes), once the model has learned
  something (some epoch's loss was below ``collapse_arm_fraction`` x ln(num_classes); an untrained model sits
  at ln(num_classes) by construction and has nothing better to return to).
- Sustained divergence: ``patience`` consecutive epochs each above both mean + ``sigma`` x std and
  ``ratio`` x mean of the last ``window`` healthy losses (statistically and materially far; a slow drift such
  as overfitting does not fire).
Snapshots are taken on healthy epochs every ``snapshot_interval`` epochs and on the first healthy epoch after a
fossilization. A snapshot is the whole model, live seeds included (see ``MorphogeneticModel.snapshot``): a
live seed may carry the host, so a host restored without it need not work; the model as it was validated does.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from esper.kasmina.checkpoint import ModelSnapshot
from esper.kasmina.model import MorphogeneticModel
from esper.leyline import ConfigError, SeedStage


@dataclass(frozen=True, slots=True)
class GovernorConfig:
    num_classes: int
    collapse_factor: float = 1.0
    collapse_arm_fraction: float = 0.8
    window: int = 5
    min_history: int = 3
    sigma: float = 3.0
    ratio: float = 1.5
    patience: int = 3
    snapshot_interval: int = 5

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 < self.collapse_arm_fraction < self.collapse_factor:
            raise ConfigError(
                f"need 0 < collapse_arm_fraction ({self.collapse_arm_fraction}) < collapse_factor "
                f"({self.collapse_factor})"
            )
        if not 1 <= self.min_history <= self.window:
            raise ConfigError(f"need 1 <= min_history ({self.min_history}) <= window ({self.window})")
        if self.sigma < 0.0 or self.ratio <= 1.0:
            raise ConfigError(f"need sigma >= 0 and ratio > 1, got sigma={self.sigma} ratio={self.ratio}")
        if self.patience < 1 or self.snapshot_interval < 1:
            raise ConfigError("patience and snapshot_interval must be >= 1")

    @property
    def random_guess_loss(self) -> float:
        """Cross-entropy of a uniform prediction over ``num_classes``."""
        return math.log(self.num_classes)


class RollbackReason(StrEnum):
    NON_FINITE_LOSS = "non_finite_loss"
    COLLAPSE = "collapse"
    DIVERGENCE = "divergence"


@dataclass(frozen=True, slots=True)
class GovernorVerdict:
    """The governor's judgement of one epoch.

    On ``rollback`` the trainer calls ``Governor.rollback()``, clears its optimizers' state (momentum points the way
    that diverged; the seeds are new objects too), re-validates the restored model, and ends the episode as a true
    terminal with a penalty, reporting the restored model's accuracy. ``reason`` and ``detail`` say why, for the
    penalty and the logs.
    """

    rollback: bool
    reason: RollbackReason | None = None
    detail: str = "healthy"
    snapshot_taken: bool = False


class Governor:
    """Watches one env's validation loss. Takes the first snapshot at construction."""

    def __init__(self, model: MorphogeneticModel, config: GovernorConfig) -> None:
        self.model = model
        self.config = config
        self._history: deque[float] = deque(maxlen=config.window)
        self._streak = 0
        self._armed = False
        self._epoch = 0
        self._snapshot: ModelSnapshot = model.snapshot()
        self.snapshot_epoch = 0

    def check(self, val_loss: float) -> GovernorVerdict:
        """Judge this epoch's validation loss (call once per epoch, after validation)."""
        self._epoch += 1
        config = self.config
        if not math.isfinite(val_loss):
            return GovernorVerdict(True, RollbackReason.NON_FINITE_LOSS, f"validation loss is {val_loss}")
        collapse_at = config.collapse_factor * config.random_guess_loss
        if self._armed and val_loss >= collapse_at:
            return GovernorVerdict(
                True,
                RollbackReason.COLLAPSE,
                f"loss {val_loss:.4f} >= {collapse_at:.4f} ({config.collapse_factor} x ln {config.num_classes})",
            )
        limit = self._divergence_limit()
        if limit is not None and val_loss > limit:
            self._streak += 1
            detail = f"loss {val_loss:.4f} > {limit:.4f} for {self._streak} consecutive epochs"
            if self._streak >= config.patience:
                return GovernorVerdict(True, RollbackReason.DIVERGENCE, detail)
            return GovernorVerdict(False, detail=detail)
        self._streak = 0
        self._history.append(val_loss)
        if val_loss < config.collapse_arm_fraction * config.random_guess_loss:
            self._armed = True
        return GovernorVerdict(False, snapshot_taken=self._maybe_snapshot())

    def _divergence_limit(self) -> float | None:
        if len(self._history) < self.config.min_history:
            return None
        mean = statistics.fmean(self._history)
        spread = statistics.pstdev(self._history)
        return max(mean + self.config.sigma * spread, self.config.ratio * mean)

    def _maybe_snapshot(self) -> bool:
        fossils = sum(stage is SeedStage.FOSSILIZED for stage in self.model.stages())
        due = self._epoch - self.snapshot_epoch >= self.config.snapshot_interval
        if not (due or fossils != self._snapshot.fossils):
            return False
        self._snapshot = self.model.snapshot()
        self.snapshot_epoch = self._epoch
        return True

    def rollback(self) -> int:
        """Restore the last snapshot through the model (exactly the model validated at that epoch); returns the
        epoch it was taken. The trainer re-validates the restored model and reports that."""
        self.model.restore(self._snapshot)
        self._streak = 0
        return self.snapshot_epoch
