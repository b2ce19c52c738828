"""The summary, results and plots of a heuristic, evaluate or compare run, from its episodes.

The commands call these with the episodes they just ran; ``esper report`` calls them with the episodes read back
from the event log (every episode event holds its whole summary), so either way the files are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.app.evaluation import controller_stats, episode_row, paired_comparison
from esper.app.plots import comparison_chart, lifecycle_timeline
from esper.app.reporting import accuracy_note, comparison_table, episodes_table, paired_table
from esper.app.run_config import RunConfig
from esper.app.run_directory import read_events, write_results, write_summary
from esper.simic.episode_records import EpisodeSummary

#: ``config.json`` ``command`` of each kind of episode run.
TRAIN_HEURISTIC = "train heuristic"
EVALUATE = "evaluate"
COMPARE = "compare"


def episodes_from_log(run_dir: Path) -> dict[str, list[EpisodeSummary]]:
    """Each controller's episodes in episode order, as logged."""
    found: dict[str, dict[int, EpisodeSummary]] = {}
    for event in read_events(run_dir):
        if event.get("event") == "episode":
            found.setdefault(event["controller"], {})[event["episode"]] = EpisodeSummary.from_dict(event)
    return {label: [episodes[i] for i in sorted(episodes)] for label, episodes in found.items()}


def write_controller_report(
    run_dir: Path,
    command: str,
    config: RunConfig,
    data: dict[str, Any],
    label: str,
    seeds: list[int],
    summaries: list[EpisodeSummary],
) -> dict[str, Any]:
    """One controller's episodes (``train heuristic`` or ``evaluate``); returns its statistics. ``data`` is the
    run's split record (``config.json``'s ``data``)."""
    rows = [episode_row(s) for s in summaries]
    stats = controller_stats(label, summaries)
    write_results(
        run_dir,
        {"task": config.task, "data": data, "controller": label, "seeds": seeds, "episodes": rows, "stats": stats},
    )
    if command == TRAIN_HEURISTIC:
        title = f"# Heuristic on `{config.task}`"
        scope = f"{len(summaries)} episodes of {config.episode_epochs} epochs, run seed {config.run.seed}."
        plot_title = f"heuristic on {config.task}"
    else:
        title = f"# Evaluation of {label} on `{config.task}`"
        scope = f"{len(seeds)} held-out episode seeds (evaluation seed {config.run.seed})."
        plot_title = f"{label} on {config.task} (held-out seeds)"
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    lifecycle_timeline(summaries, config.preset.slots.names(), plots / "lifecycle.png", plot_title)
    sections = [
        title,
        scope,
        accuracy_note(data),
        comparison_table([stats]),
        "## Episodes",
        episodes_table(rows),
        "## Seed lifecycles\n\n![lifecycle](plots/lifecycle.png)",
    ]
    write_summary(run_dir, "\n\n".join(sections) + "\n")
    return stats


def write_comparison_report(
    run_dir: Path,
    config: RunConfig,
    data: dict[str, Any],
    labels: list[str],
    baseline: str,
    seeds: list[int],
    episodes: dict[str, list[EpisodeSummary]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Several controllers on the same seeds; returns their statistics and the paired differences."""
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    for label in labels:
        lifecycle_timeline(
            episodes[label],
            config.preset.slots.names(),
            plots / f"lifecycle-{slug(label)}.png",
            f"{label} on {config.task}",
        )
    static = episodes.get("static")
    stats = [controller_stats(label, episodes[label], static) for label in labels]
    paired = {label: paired_comparison(episodes[label], episodes[baseline]) for label in labels if label != baseline}
    comparison_chart(stats, plots / "comparison.png")
    results: dict[str, Any] = {
        "task": config.task,
        "data": data,
        "seeds": seeds,
        "baseline": baseline,
        "controllers": stats,
        "paired_vs_baseline": paired,
        "episodes": {label: [episode_row(s) for s in episodes[label]] for label in labels},
    }
    write_results(run_dir, results)
    markdown = "\n\n".join(
        [
            f"# Comparison on `{config.task}`",
            f"{len(seeds)} held-out episode seeds (evaluation seed {config.run.seed}), the same for every "
            "controller. Means with 95 % bootstrap intervals.",
            accuracy_note(data),
            comparison_table(stats),
            f"## Paired differences against {baseline}",
            paired_table(baseline, paired) if paired else "(only one controller)",
            "![comparison](plots/comparison.png)",
            "## Seed lifecycles",
            *[f"![{label}](plots/lifecycle-{slug(label)}.png)" for label in labels],
        ]
    )
    write_summary(run_dir, markdown + "\n")
    return stats, paired


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")
