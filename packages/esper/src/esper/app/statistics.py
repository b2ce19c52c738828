"""Means with 95 % bootstrap intervals, and paired differences between controllers on the same episode seeds.

The bootstrap uses its own seeded generator, so a table computed twice from the same episodes is identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 12345


@dataclass(frozen=True)
class Interval:
    """Mean and 95 % percentile-bootstrap interval of a sample."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}

    def format(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_mean(
    values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Interval:
    """Mean of ``values`` with a 95 % bootstrap interval (degenerate interval for a single value)."""
    sample = np.asarray(values, dtype=np.float64)
    if sample.size == 0:
        raise ValueError("bootstrap_mean needs at least one value")
    mean = float(sample.mean())
    if sample.size == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, sample.size, size=(resamples, sample.size))
    means = sample[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(mean, float(low), float(high), int(sample.size))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Bootstrap interval of mean(a - b) over paired episodes (same seed in both lists, same order)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    return bootstrap_mean([x - y for x, y in zip(a, b, strict=True)])


def bootstrap_ratio(
    numerators: Sequence[float], denominators: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES
) -> Interval | None:
    """Ratio of means sum(num)/sum(den) over paired episodes with a 95 % bootstrap interval; None when the
    denominators are all zero (nothing to divide by)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape or num.size == 0:
        raise ValueError("bootstrap_ratio needs two non-empty samples of the same length")
    if den.sum() == 0:
        return None
    ratio = float(num.sum() / den.sum())
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, num.size, size=(resamples, num.size))
    den_sums = den[draws].sum(axis=1)
    keep = den_sums != 0
    ratios = num[draws].sum(axis=1)[keep] / den_sums[keep]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Interval(ratio, float(low), float(high), int(num.size))
