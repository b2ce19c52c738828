"""Per-controller statistics over held-out episodes, and paired comparisons on the same episode seeds.

The result of an episode is its test accuracy (the test set is seen once, at the end); the final validation
accuracy, which the controller and the reward saw all along, is reported beside it under its own name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esper.app.statistics import Interval, bootstrap_mean, bootstrap_ratio, paired_difference
from esper.simic.envs.episode_records import EpisodeSummary

METRICS = ("test_accuracy", "val_accuracy", "params_added", "germinated", "fossilized", "pruned")
_SUMMARY_FIELDS = {"val_accuracy": "final_val_accuracy"}


def _metric(summary: EpisodeSummary, metric: str) -> float:
    return float(getattr(summary, _SUMMARY_FIELDS.get(metric, metric)))


def episode_row(summary: EpisodeSummary) -> dict[str, Any]:
    return {
        "seed": summary.seed,
        "test_accuracy": summary.test_accuracy,
        "val_accuracy": summary.final_val_accuracy,
        "params_added": summary.params_added,
        "germinated": summary.germinated,
        "fossilized": summary.fossilized,
        "pruned": summary.pruned,
        "rolled_back": summary.rolled_back,
        "total_reward": summary.total_reward,
    }


def controller_stats(
    label: str,
    episodes: Sequence[EpisodeSummary],
    static: Sequence[EpisodeSummary] | None = None,
) -> dict[str, Any]:
    """Mean and 95 % interval of every metric; with the static host's episodes on the same seeds, also the test
    accuracy gained over it and that gain per 1,000 added parameters."""
    stats: dict[str, Any] = {"controller": label, "episodes": len(episodes)}
    for metric in METRICS:
        stats[metric] = bootstrap_mean([_metric(e, metric) for e in episodes]).as_dict()
    stats["rollbacks"] = sum(e.rolled_back for e in episodes)
    if static is not None:
        _check_paired(episodes, static)
        gains = [e.test_accuracy - s.test_accuracy for e, s in zip(episodes, static, strict=True)]
        stats["gain_over_static"] = bootstrap_mean(gains).as_dict()
        ratio = bootstrap_ratio(gains, [e.params_added / 1000.0 for e in episodes])
        stats["gain_per_1k_params"] = None if ratio is None else ratio.as_dict()
    return stats


def paired_comparison(
    episodes: Sequence[EpisodeSummary], baseline: Sequence[EpisodeSummary]
) -> dict[str, dict[str, float | int]]:
    """Per-seed differences (controller minus baseline) of test accuracy, validation accuracy and parameters,
    with 95 % intervals."""
    _check_paired(episodes, baseline)
    return {
        metric: paired_difference(
            [_metric(e, metric) for e in episodes], [_metric(b, metric) for b in baseline]
        ).as_dict()
        for metric in ("test_accuracy", "val_accuracy", "params_added")
    }


def _check_paired(a: Sequence[EpisodeSummary], b: Sequence[EpisodeSummary]) -> None:
    if [e.seed for e in a] != [e.seed for e in b]:
        raise ValueError("paired statistics need the same episode seeds in the same order")


def interval_text(values: dict[str, float | int] | None, digits: int = 2) -> str:
    if values is None:
        return "n/a"
    return Interval(float(values["mean"]), float(values["low"]), float(values["high"]), int(values["n"])).format(digits)
