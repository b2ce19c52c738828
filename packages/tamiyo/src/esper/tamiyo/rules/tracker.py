"""The heuristic's training-signal tracker: accuracy plateau, host stabilization latch and short histories.

State lives in one immutable ``TrackerSignals`` value. ``peek`` computes the next value without storing it and
``update`` stores exactly what ``peek`` returns, so the two can never disagree; ``reset`` replaces the value
with a fresh one, so nothing survives it.

Epsilon and non-finite values: the relative loss change divides by ``max(|previous loss|, loss_epsilon)``, so a
previous loss of (almost) zero gives a large but finite change instead of a division by zero. An epoch whose loss
or accuracy is NaN/inf breaks both streaks and is not recorded; the last finite values stay the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from esper.leyline import HISTORY_LENGTH, ConfigError


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """``plateau_threshold`` in accuracy percentage points; the stable band is an open interval of relative
    loss change, which must hold for ``stable_epochs`` consecutive epochs before the latch closes."""

    plateau_threshold: float = 0.5
    stable_band: tuple[float, float] = (-0.05, 0.03)
    stable_epochs: int = 3
    loss_epsilon: float = 1e-8
    history_length: int = HISTORY_LENGTH

    def __post_init__(self) -> None:
        low, high = self.stable_band
        if not low < 0.0 < high:
            raise ConfigError(f"stable_band must be (low < 0 < high), got {self.stable_band}")
        if self.stable_epochs < 1 or self.history_length < 1:
            raise ConfigError("stable_epochs and history_length must be >= 1")
        if not self.loss_epsilon > 0.0:
            raise ConfigError(f"loss_epsilon must be > 0, got {self.loss_epsilon}")


@dataclass(frozen=True, slots=True)
class TrackerSignals:
    """What the tracker knows after the epochs it has seen. Gains and changes are ``None`` until there are two
    finite epochs to compare."""

    epochs_seen: int = 0
    last_loss: float | None = None
    last_accuracy: float | None = None
    #: Accuracy change (percentage points) over the last epoch.
    accuracy_gain: float | None = None
    #: (loss - previous loss) / max(|previous loss|, epsilon) over the last epoch.
    relative_loss_change: float | None = None
    #: Consecutive epochs whose accuracy gain was below the plateau threshold.
    plateau_epochs: int = 0
    #: Consecutive epochs whose relative loss change was inside the stable band.
    stable_epochs: int = 0
    #: Latched: once the host has been stable for ``stable_epochs`` epochs it stays stabilized.
    stabilized: bool = False
    #: Up to ``history_length`` finite values, oldest first.
    loss_history: tuple[float, ...] = ()
    accuracy_history: tuple[float, ...] = ()


class SignalTracker:
    """Per-env tracker; feed it one (validation loss, accuracy %) pair per host epoch."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._signals = TrackerSignals()

    @property
    def signals(self) -> TrackerSignals:
        return self._signals

    def peek(self, val_loss: float, val_accuracy: float) -> TrackerSignals:
        """The signals ``update`` would produce for this epoch, without storing them."""
        current = self._signals
        if not (math.isfinite(val_loss) and math.isfinite(val_accuracy)):
            return replace(current, epochs_seen=current.epochs_seen + 1, plateau_epochs=0, stable_epochs=0)
        gain = None if current.last_accuracy is None else val_accuracy - current.last_accuracy
        change = None
        if current.last_loss is not None:
            change = (val_loss - current.last_loss) / max(abs(current.last_loss), self.config.loss_epsilon)
        plateau = current.plateau_epochs + 1 if gain is not None and gain < self.config.plateau_threshold else 0
        low, high = self.config.stable_band
        stable = current.stable_epochs + 1 if change is not None and low < change < high else 0
        keep = self.config.history_length
        return TrackerSignals(
            epochs_seen=current.epochs_seen + 1,
            last_loss=val_loss,
            last_accuracy=val_accuracy,
            accuracy_gain=gain,
            relative_loss_change=change,
            plateau_epochs=plateau,
            stable_epochs=stable,
            stabilized=current.stabilized or stable >= self.config.stable_epochs,
            loss_history=(*current.loss_history, val_loss)[-keep:],
            accuracy_history=(*current.accuracy_history, val_accuracy)[-keep:],
        )

    def update(self, val_loss: float, val_accuracy: float) -> TrackerSignals:
        """Record one epoch and return the new signals (exactly what ``peek`` returned for the same input)."""
        self._signals = self.peek(val_loss, val_accuracy)
        return self._signals

    def reset(self) -> None:
        """Forget everything, including the stabilization latch (a new episode starts from scratch)."""
        self._signals = TrackerSignals()
