"""``esper compare``: several controllers on the same held-out episode seeds, side by side.

Every controller faces exactly the same episodes (same data order and host initialization per seed), so the
differences are paired: the table reports each controller's mean with a 95 % bootstrap interval, and the paired
difference against a baseline controller (the heuristic when it is in the list).
"""

from __future__ import annotations

import argparse
from typing import Any

from esper.app.commands.shared import (
    resolve_evaluation_config,
    run_logged_episodes,
    warn_on_other_episode_lengths,
)
from esper.app.controllers import ControllerSpec, build_controller
from esper.app.evaluation import controller_stats, episode_row, paired_comparison
from esper.app.plots import comparison_chart, lifecycle_timeline
from esper.app.reporting import comparison_table, paired_table
from esper.app.run_directory import RunDirectory, default_run_dir
from esper.leyline import ConfigError
from esper.simic.episode_records import EpisodeSummary
from esper.simic.episode_seeds import evaluation_episode_seeds


def run(args: argparse.Namespace) -> int:
    config = resolve_evaluation_config(args)
    specs = [ControllerSpec.parse(text) for text in args.controllers.split(",") if text.strip()]
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels) or not specs:
        raise ConfigError(f"--controllers needs distinct controllers, got {args.controllers!r}")
    baseline = args.baseline or ("heuristic" if "heuristic" in labels else labels[0])
    if baseline not in labels:
        raise ConfigError(f"--baseline {baseline!r} is not among the controllers {labels}")
    seeds = evaluation_episode_seeds(config.run.seed, config.run.episodes)
    out = args.out or default_run_dir(config.task, "compare")
    episodes: dict[str, list[EpisodeSummary]] = {}
    warn_on_other_episode_lengths(specs, config)
    # Every controller is built (its checkpoint loaded and checked) before the output directory is created.
    controllers = [
        build_controller(spec, config.preset.slots, seed=config.run.seed, device=config.run.device) for spec in specs
    ]
    task = config.preset.load_data(args.data_dir)
    with RunDirectory(out, tensorboard=False, unique=args.out is None) as directory:
        directory.write_config({**config.to_dict(), "controllers": labels, "episode_seeds": seeds})
        for spec, controller in zip(specs, controllers, strict=True):
            episodes[spec.label] = run_logged_episodes(
                config, controller, seeds, directory, task, quiet=args.quiet, label=spec.label
            )
            lifecycle_timeline(
                episodes[spec.label],
                config.preset.slots.names(),
                directory.plots / f"lifecycle-{_slug(spec.label)}.png",
                f"{spec.label} on {config.task}",
            )
        static = episodes.get("static")
        stats = [controller_stats(label, episodes[label], static) for label in labels]
        paired = {
            label: paired_comparison(episodes[label], episodes[baseline]) for label in labels if label != baseline
        }
        comparison_chart(stats, directory.plots / "comparison.png")
        results: dict[str, Any] = {
            "task": config.task,
            "seeds": seeds,
            "baseline": baseline,
            "controllers": stats,
            "paired_vs_baseline": paired,
            "episodes": {label: [episode_row(s) for s in episodes[label]] for label in labels},
        }
        directory.write_results(results)
        markdown = "\n\n".join(
            [
                f"# Comparison on `{config.task}`",
                f"{len(seeds)} held-out episode seeds (evaluation seed {config.run.seed}), the same for every "
                "controller. Means with 95 % bootstrap intervals.",
                comparison_table(stats),
                f"## Paired differences against {baseline}",
                paired_table(baseline, paired) if paired else "(only one controller)",
                "![comparison](plots/comparison.png)",
                "## Seed lifecycles",
                *[f"![{label}](plots/lifecycle-{_slug(label)}.png)" for label in labels],
            ]
        )
        directory.write_summary(markdown + "\n")
    print(comparison_table(stats))
    if paired:
        print()
        print(paired_table(baseline, paired))
    print(f"\nwrote {directory.path}/summary.md and {directory.path}/results.json")
    return 0


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")
