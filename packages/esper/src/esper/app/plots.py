"""Plots of a run: learning curves and training health, per-episode seed-lifecycle timelines, comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window: runs on headless machines and in CI

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from esper.leyline import HEAD_ORDER, SeedStage
from esper.simic.envs.episode_records import EpisodeSummary

STAGE_COLORS = {
    SeedStage.GERMINATED: "#c7e9c0",
    SeedStage.TRAINING: "#74c476",
    SeedStage.BLENDING: "#fd8d3c",
    SeedStage.HOLDING: "#6baed6",
    SeedStage.FOSSILIZED: "#08519c",
    SeedStage.PRUNED: "#cb181d",
    SeedStage.EMBARGOED: "#fc9272",
    SeedStage.RESETTING: "#fee0d2",
}


def learning_curves(
    rounds: Sequence[dict[str, Any]], validations: Sequence[dict[str, Any]], path: Path, metric_name: str
) -> None:
    """Mean final test and validation ``metric_name`` (the task's accuracy) per round (validation with its min-max
    band) beside the argmax policy's periodic validation, mean return, per-head entropy, explained variance."""
    x = [r["round"] for r in rounds]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0][0]
    ax.plot(x, [r["mean_test_accuracy"] for r in rounds], color="C3", label="test (mean)")
    ax.plot(x, [r["mean_val_accuracy"] for r in rounds], color="C0", label="validation (mean)")
    ax.fill_between(x, [r["min_val_accuracy"] for r in rounds], [r["max_val_accuracy"] for r in rounds], alpha=0.2)
    if validations:
        ax.plot(
            [v["round"] for v in validations],
            [v["mean_val_accuracy"] for v in validations],
            "o-",
            color="C2",
            label="argmax policy, selection seeds",
        )
    ax.set(title=f"final {metric_name} per episode (training seeds)", xlabel="round", ylabel=f"{metric_name} (%)")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    ax.plot(x, [r["mean_return"] for r in rounds], color="C1")
    ax.set(title="mean episode return", xlabel="round")
    ax = axes[1][0]
    for head in HEAD_ORDER:
        values = [r["update"].get(f"heads.{head.value}.entropy") for r in rounds]
        points = [(xi, v) for xi, v in zip(x, values, strict=True) if v is not None]
        if points:
            ax.plot(*zip(*points, strict=True), label=head.value)
    ax.set(title="normalized entropy per head (steps with a choice)", xlabel="round", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1][1]
    ax.plot(x, [r["update"].get("explained_variance") for r in rounds], label="explained variance")
    ax.plot(x, [r["update"].get("approx_kl") for r in rounds], label="approx KL")
    ax.plot(x, [r["update"].get("clip_fraction") for r in rounds], label="clip fraction")
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set(title="PPO health", xlabel="round")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _segments(summary: EpisodeSummary, slot: str) -> list[tuple[float, float, SeedStage]]:
    """(start epoch, duration, stage) of every non-empty stage a slot went through."""
    segments: list[tuple[float, float, SeedStage]] = []
    stage, since = SeedStage.DORMANT, 0.0
    for event in summary.events:
        if event.slot != slot:
            continue
        if stage is not SeedStage.DORMANT:
            segments.append((since, event.epoch + 1 - since, stage))
        stage, since = event.target, float(event.epoch + 1)
    if stage is not SeedStage.DORMANT:
        segments.append((since, summary.epochs_run - since, stage))
    return segments


def lifecycle_timeline(
    episodes: Sequence[EpisodeSummary],
    slots: Sequence[str],
    path: Path,
    title: str,
    metric: str,
    max_episodes: int = 6,
) -> None:
    """One panel per episode: each slot's stages over the epochs, the validation ``metric`` curve on top (the
    task's accuracy as headings abbreviate it), and the final test value in the title."""
    shown = list(episodes)[:max_episodes]
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 1.0 + 1.3 * len(shown)), squeeze=False)
    for ax, summary in zip(axes[:, 0], shown, strict=True):
        for row, slot in enumerate(slots):
            for start, width, stage in _segments(summary, slot):
                ax.broken_barh([(start, width)], (row - 0.4, 0.8), color=STAGE_COLORS[stage])
        ax.set_yticks(range(len(slots)), list(slots))
        ax.set_xlim(0, max(summary.epochs_run, 1))
        accuracy = ax.twinx()
        curve = summary.val_accuracy_curve
        accuracy.plot(range(len(curve)), curve, color="black", linewidth=1)
        accuracy.set_ylim(0, 100)
        accuracy.set_ylabel(f"val {metric} %", fontsize=8)
        ax.set_title(
            f"seed {summary.seed}: test {summary.test_accuracy:.1f} %, final val {summary.final_val_accuracy:.1f} %, "
            f"+{summary.params_added} params" + (" (rolled back)" if summary.rolled_back else ""),
            fontsize=9,
        )
    axes[-1][0].set_xlabel("epoch")
    handles = [Patch(color=color) for color in STAGE_COLORS.values()]
    fig.suptitle(title, y=0.99, fontsize=10)
    fig.legend(
        handles,
        [s.name.lower() for s in STAGE_COLORS],
        loc="upper center",
        ncol=8,
        fontsize=8,
        bbox_to_anchor=(0.5, 0.955),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.90))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def comparison_chart(rows: Sequence[dict[str, Any]], path: Path, metric_name: str) -> None:
    """Mean test and final validation ``metric_name`` (the task's accuracy) and parameters added per controller,
    with 95 % intervals."""
    names = [row["controller"] for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric, label in (
        (axes[0], "test_accuracy", f"test {metric_name} (%)"),
        (axes[1], "val_accuracy", f"final validation {metric_name} (%)"),
        (axes[2], "params_added", "parameters added"),
    ):
        means = [row[metric]["mean"] for row in rows]
        errors = [
            [row[metric]["mean"] - row[metric]["low"] for row in rows],
            [row[metric]["high"] - row[metric]["mean"] for row in rows],
        ]
        ax.bar(names, means, yerr=errors, capsize=4, color=[f"C{i}" for i in range(len(rows))])
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
