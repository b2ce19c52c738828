"""Per-controller statistics over held-out episodes, and paired comparisons on the same episode seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esper.app.statistics import Interval, bootstrap_mean, bootstrap_ratio, paired_difference
from esper.simic.episode_records import EpisodeSummary

METRICS = ("final_accuracy", "params_added", "germinated", "fossilized", "pruned")


def episode_row(summary: EpisodeSummary) -> dict[str, Any]:
    return {
        "seed": summary.seed,
        "final_accuracy": summary.final_accuracy,
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
    """Mean and 95 % interval of every metric; with the static host's episodes on the same seeds, also the
    accuracy gained over it and that gain per 1,000 added parameters."""
    stats: dict[str, Any] = {"controller": label, "episodes": len(episodes)}
    for metric in METRICS:
        stats[metric] = bootstrap_mean([float(getattr(e, metric)) for e in episodes]).as_dict()
    stats["rollbacks"] = sum(e.rolled_back for e in episodes)
    if static is not None:
        _check_paired(episodes, static)
        gains = [e.final_accuracy - s.final_accuracy for e, s in zip(episodes, static, strict=True)]
        stats["gain_over_static"] = bootstrap_mean(gains).as_dict()
        ratio = bootstrap_ratio(gains, [e.params_added / 1000.0 for e in episodes])
        stats["gain_per_1k_params"] = None if ratio is None else ratio.as_dict()
    return stats


def paired_comparison(
    episodes: Sequence[EpisodeSummary], baseline: Sequence[EpisodeSummary]
) -> dict[str, dict[str, float | int]]:
    """Per-seed differences (controller minus baseline) of accuracy and parameters, with 95 % intervals."""
    _check_paired(episodes, baseline)
    accuracy = paired_difference([e.final_accuracy for e in episodes], [b.final_accuracy for b in baseline])
    params = paired_difference([float(e.params_added) for e in episodes], [float(b.params_added) for b in baseline])
    return {"final_accuracy": accuracy.as_dict(), "params_added": params.as_dict()}


def _check_paired(a: Sequence[EpisodeSummary], b: Sequence[EpisodeSummary]) -> None:
    if [e.seed for e in a] != [e.seed for e in b]:
        raise ValueError("paired statistics need the same episode seeds in the same order")


def interval_text(values: dict[str, float | int] | None, digits: int = 2) -> str:
    if values is None:
        return "n/a"
    return Interval(float(values["mean"]), float(values["low"]), float(values["high"]), int(values["n"])).format(digits)
