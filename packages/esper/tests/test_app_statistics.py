"""Bootstrap means, paired differences and ratios: intervals that contain the estimate, deterministic results,
and pairing that actually removes the shared per-seed variation."""

from __future__ import annotations

import numpy as np
import pytest

from esper.app.statistics import Interval, bootstrap_mean, bootstrap_ratio, paired_difference

SAMPLE = [61.2, 55.0, 70.4, 48.9, 66.1, 59.3, 52.8, 63.7]


def test_interval_contains_the_mean_and_is_ordered() -> None:
    interval = bootstrap_mean(SAMPLE)
    assert interval.mean == pytest.approx(float(np.mean(SAMPLE)))
    assert min(SAMPLE) <= interval.low < interval.mean < interval.high <= max(SAMPLE)
    assert interval.n == len(SAMPLE)


def test_bootstrap_is_deterministic_and_seeded() -> None:
    assert bootstrap_mean(SAMPLE) == bootstrap_mean(list(SAMPLE))
    other = bootstrap_mean(SAMPLE, seed=7)
    assert other.mean == bootstrap_mean(SAMPLE).mean
    assert (other.low, other.high) != (bootstrap_mean(SAMPLE).low, bootstrap_mean(SAMPLE).high)


def test_interval_narrows_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.normal(50, 10, size=8).tolist())
    large = bootstrap_mean(rng.normal(50, 10, size=200).tolist())
    assert large.high - large.low < small.high - small.low
    assert large.low < 50 < large.high


def test_single_value_and_empty_sample() -> None:
    assert bootstrap_mean([42.0]) == Interval(42.0, 42.0, 42.0, 1)
    assert bootstrap_mean([3.0, 3.0, 3.0]) == Interval(3.0, 3.0, 3.0, 3)
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_mean([])


def test_paired_difference_removes_the_shared_episode_effect() -> None:
    """Two controllers on the same seeds: per-seed difficulty varies a lot, the gain is a steady +2 pp. The
    paired interval is tight around 2 and excludes 0; the unpaired intervals overlap."""
    rng = np.random.default_rng(1)
    difficulty = rng.normal(60, 8, size=10)
    baseline = difficulty.tolist()
    better = (difficulty + 2.0 + rng.normal(0, 0.2, size=10)).tolist()
    paired = paired_difference(better, baseline)
    assert paired.mean == pytest.approx(float(np.mean(np.subtract(better, baseline))))
    assert 0.0 < paired.low < 2.0 < paired.high < 4.0
    a, b = bootstrap_mean(better), bootstrap_mean(baseline)
    assert a.low < b.high  # unpaired, the same data looks indistinguishable
    assert paired_difference(baseline, better).mean == pytest.approx(-paired.mean)
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])


def test_ratio_of_sums_with_interval() -> None:
    gains = [2.0, 4.0, 3.0, 5.0]
    params = [1.0, 2.0, 1.5, 2.5]  # 2 pp per 1k params in every episode
    ratio = bootstrap_ratio(gains, params)
    assert ratio is not None
    assert ratio.mean == pytest.approx(2.0) and ratio.low == pytest.approx(2.0) and ratio.high == pytest.approx(2.0)
    noisy = bootstrap_ratio([1.0, 5.0, 2.0, 6.0, 3.0], [1.0, 1.0, 2.0, 2.0, 1.0])
    assert noisy is not None
    assert noisy.mean == pytest.approx(17.0 / 7.0)
    assert noisy.low <= noisy.mean <= noisy.high and noisy.low < noisy.high
    assert bootstrap_ratio([1.0, 5.0, 2.0, 6.0, 3.0], [1.0, 1.0, 2.0, 2.0, 1.0]) == noisy


def test_ratio_without_denominator_is_none_and_shapes_are_checked() -> None:
    assert bootstrap_ratio([1.0, 2.0], [0.0, 0.0]) is None
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ratio([], [])


def test_interval_formatting_and_dict() -> None:
    interval = Interval(12.3456, 10.0, 14.5, 4)
    assert interval.format() == "12.35 [10.00, 14.50]"
    assert interval.format(0) == "12 [10, 14]"
    assert interval.as_dict() == {"mean": 12.3456, "low": 10.0, "high": 14.5, "n": 4}
