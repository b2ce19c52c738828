"""The summary, results and plots of a heuristic, evaluate or compare run, from its episodes.

The commands call these with the episodes they just ran; ``esper report`` calls them with the episodes read back
from the event log (every episode event holds its whole summary), so either way the files are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.app.blueprint_outcomes import blueprint_outcomes, prune_rules
from esper.app.evaluation import controller_stats, episode_row, paired_comparison
from esper.app.plots import comparison_chart, lifecycle_timeline
from esper.app.reporting import (
    BLUEPRINTS_NOTE,
    accuracy_note,
    blueprints_table,
    comparison_table,
    episodes_table,
    markdown_table,
    paired_table,
    short_metric,
)
from esper.app.run_config import RunConfig
from esper.app.run_directory import read_events, read_run_config, write_results, write_summary
from esper.app.schedule_choice import SCHEDULE_CHOICE_FILE, SELECTION_METRIC, write_schedule_choice
from esper.app.statistics import bootstrap_mean
from esper.leyline import blueprint_from_name
from esper.simic.envs.episode_records import EpisodeSummary
from esper.tamiyo import SCHEDULE_PREFIX

#: ``config.json`` ``command`` of each kind of episode run.
TRAIN_HEURISTIC = "train heuristic"
EVALUATE = "evaluate"
COMPARE = "compare"
PICK_SCHEDULE = "pick-schedule"


def episodes_from_log(run_dir: Path) -> dict[str, list[EpisodeSummary]]:
    """Each controller's episodes in episode order, as logged."""
    found: dict[str, dict[int, EpisodeSummary]] = {}
    for event in read_events(run_dir):
        if event.get("event") == "episode":
            found.setdefault(event["controller"], {})[event["episode"]] = EpisodeSummary.from_dict(event)
    return {label: [episodes[i] for i in sorted(episodes)] for label, episodes in found.items()}


def _outcomes(
    run_dir: Path, config: RunConfig, name: str | None, summaries: list[EpisodeSummary]
) -> dict[str, dict[str, Any]]:
    """The blueprint outcomes of one controller's episodes, with the prune rules its logged decisions name
    (``name``: the controller as the log names it; None: the run's only controller)."""
    decisions: dict[int, list[dict[str, Any]]] = {}
    for event in read_events(run_dir):
        if event.get("event") == "decision" and (name is None or event.get("controller") == name):
            decisions.setdefault(int(event["episode"]), []).append(event)
    slots = config.preset.slots.names()
    return blueprint_outcomes(summaries, [prune_rules(decisions.get(i, []), slots) for i in range(len(summaries))])


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
    outcomes = _outcomes(run_dir, config, None, summaries)
    write_results(
        run_dir,
        {
            "task": config.task,
            "data": data,
            "controller": label,
            "seeds": seeds,
            "episodes": rows,
            "stats": stats,
            "blueprints": outcomes,
        },
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
    metric = short_metric(config.preset.metric)
    lifecycle_timeline(summaries, config.preset.slots.names(), plots / "lifecycle.png", plot_title, metric)
    sections = [
        title,
        scope,
        accuracy_note(data),
        comparison_table([stats], metric=config.preset.metric),
        "## Blueprints",
        BLUEPRINTS_NOTE,
        blueprints_table({label: outcomes}),
        "## Episodes",
        episodes_table(rows, metric=config.preset.metric),
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
            short_metric(config.preset.metric),
        )
    static = episodes.get("static")
    stats = [controller_stats(label, episodes[label], static) for label in labels]
    paired = {label: paired_comparison(episodes[label], episodes[baseline]) for label in labels if label != baseline}
    comparison_chart(stats, plots / "comparison.png", config.preset.metric)
    names = read_run_config(run_dir).get("controller_names", labels)
    outcomes = {
        label: _outcomes(run_dir, config, name, episodes[label]) for label, name in zip(labels, names, strict=True)
    }
    results: dict[str, Any] = {
        "task": config.task,
        "data": data,
        "seeds": seeds,
        "baseline": baseline,
        "controllers": stats,
        "paired_vs_baseline": paired,
        "blueprints": outcomes,
        "episodes": {label: [episode_row(s) for s in episodes[label]] for label in labels},
    }
    write_results(run_dir, results)
    markdown = "\n\n".join(
        [
            f"# Comparison on `{config.task}`",
            f"{len(seeds)} held-out episode seeds (evaluation seed {config.run.seed}), the same for every "
            "controller. Means with 95 % bootstrap intervals.",
            accuracy_note(data),
            comparison_table(stats, metric=config.preset.metric),
            f"## Paired differences against {baseline}",
            paired_table(baseline, paired, metric=config.preset.metric) if paired else "(only one controller)",
            "![comparison](plots/comparison.png)",
            "## Blueprints",
            BLUEPRINTS_NOTE,
            blueprints_table(outcomes),
            "## Seed lifecycles",
            *[f"![{label}](plots/lifecycle-{slug(label)}.png)" for label in labels],
        ]
    )
    write_summary(run_dir, markdown + "\n")
    return stats, paired


def write_schedule_pick_report(
    run_dir: Path,
    config: RunConfig,
    data: dict[str, Any],
    labels: list[str],
    seeds: list[int],
    episodes: dict[str, list[EpisodeSummary]],
) -> tuple[str, str]:
    """Every schedule's validation accuracy on the selection seeds, and the best one written as the choice (on a
    tie, the one that added fewer parameters). Returns the table and the best label. Test accuracy is left out:
    the choice must not be made, or seem to be made, on it."""
    scores = {label: bootstrap_mean([e.final_val_accuracy for e in episodes[label]]) for label in labels}
    params = {label: bootstrap_mean([float(e.params_added) for e in episodes[label]]) for label in labels}
    best = max(labels, key=lambda label: (scores[label].mean, -params[label].mean))
    write_schedule_choice(
        run_dir / SCHEDULE_CHOICE_FILE,
        task=config.task,
        blueprint=blueprint_from_name(best.removeprefix(SCHEDULE_PREFIX)),
        episode_epochs=config.episode_epochs,
        episode_seeds=seeds,
        scores={label: scores[label].mean for label in labels},
    )
    table = markdown_table(
        ["schedule", f"final val {short_metric(config.preset.metric)} % [95% CI]", "params added", "chosen"],
        [[label, scores[label].format(2), params[label].format(0), "yes" if label == best else ""] for label in labels],
    )
    results = {
        "task": config.task,
        "data": data,
        "seeds": seeds,
        "metric": SELECTION_METRIC,
        "best": best,
        "schedules": {
            label: {"val_accuracy": scores[label].as_dict(), "params_added": params[label].as_dict()}
            for label in labels
        },
    }
    write_results(run_dir, results)
    markdown = "\n\n".join(
        [
            f"# Best fixed schedule on `{config.task}`",
            f"{len(seeds)} training-range episode seeds of {config.episode_epochs} epochs (selection seeds of run "
            f"seed {config.run.seed}; never evaluation seeds), the same for every schedule. The choice maximizes "
            "the mean final validation accuracy; the test split is not looked at.",
            table,
            f"Chosen: **{best}**, written to `{SCHEDULE_CHOICE_FILE}`; compare it on held-out seeds with "
            f"`esper compare --controllers best-schedule:{run_dir},...`.",
        ]
    )
    write_summary(run_dir, markdown + "\n")
    return table, best


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")
