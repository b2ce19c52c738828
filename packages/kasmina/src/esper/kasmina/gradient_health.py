"""Seed gradient health: the measurement the TRAINING -> BLENDING gate needs, so it can never be switched off.

The trainer calls ``observe`` after every backward; norms accumulate on the device (no sync per call) and are
read once when a report or a gate asks.

Health definition (docs/design/gates.md#gradient-health): with ``mean`` the epoch's mean per-step L2 norm of the seed's
gradients and ``peak`` its largest per-step norm, let ``d`` be how many decades ``mean`` lies outside the band
[``VANISHING_NORM``, ``EXPLODING_NORM``] or ``peak`` lies above ``SPIKE_NORM``. Health is ``1 - d / 2`` clipped
to [0, 1]: 1 inside the band, 0.5 one decade out, 0 two decades out. Non-finite gradients give health 0.
"Exploding" means non-finite, ``mean > EXPLODING_NORM`` or ``peak > SPIKE_NORM``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: Below this mean per-step norm the seed is not learning (health drops by 0.5 per decade below).
VANISHING_NORM = 1e-6
#: Above this mean per-step norm the seed's updates are too large for a tiny residual module.
EXPLODING_NORM = 10.0
#: A single step above this norm is a spike that marks the epoch as exploding.
SPIKE_NORM = 100.0


@dataclass(frozen=True, slots=True)
class GradientSummary:
    """One epoch of a seed's gradients: mean per-step norm, largest per-step norm, health in [0, 1]."""

    norm: float
    peak: float
    health: float
    exploding: bool


def gradient_health(mean_norm: float, peak_norm: float) -> GradientSummary:
    """Score an epoch's gradient norms (see the module docstring for the definition)."""
    if not (math.isfinite(mean_norm) and math.isfinite(peak_norm)):
        return GradientSummary(norm=mean_norm, peak=peak_norm, health=0.0, exploding=True)
    if mean_norm <= 0.0:
        return GradientSummary(norm=mean_norm, peak=peak_norm, health=0.0, exploding=False)
    decades = max(
        0.0,
        math.log10(VANISHING_NORM / mean_norm),
        math.log10(mean_norm / EXPLODING_NORM),
        math.log10(peak_norm / SPIKE_NORM) if peak_norm > 0.0 else 0.0,
    )
    exploding = mean_norm > EXPLODING_NORM or peak_norm > SPIKE_NORM
    return GradientSummary(
        norm=mean_norm, peak=peak_norm, health=min(1.0, max(0.0, 1.0 - decades / 2.0)), exploding=exploding
    )


class GradientMonitor:
    """Accumulates one seed's per-step gradient norms over an epoch; ``summary`` reads them (one device sync).

    ``close_epoch`` (the slot's tick) keeps the finished epoch's summary, so reports between the tick and the
    next backward still show the last measured epoch.
    """

    __slots__ = ("_count", "_last", "_peak", "_total")

    def __init__(self, last: GradientSummary | None = None) -> None:
        self._total: Tensor | None = None
        self._peak: Tensor | None = None
        self._count = 0
        self._last = last

    def observe(self, parameters: Sequence[nn.Parameter]) -> None:
        """Add the current gradients of ``parameters`` as one step; parameters without a gradient are skipped."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads).to(torch.float32)
        if self._total is None or self._peak is None:
            self._total = norm.clone()
            self._peak = norm.clone()
        else:
            self._total.add_(norm)
            torch.maximum(self._peak, norm, out=self._peak)
        self._count += 1

    def summary(self) -> GradientSummary | None:
        """This epoch's summary if anything was observed since the last tick, else the previous epoch's."""
        if self._total is None or self._peak is None:
            return self._last
        total, peak = torch.stack((self._total, self._peak)).tolist()
        return gradient_health(total / self._count, peak)

    def close_epoch(self) -> None:
        self._last = self.summary()
        self._total = None
        self._peak = None
        self._count = 0
