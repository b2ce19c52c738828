"""``esper train heuristic``: run the rule-based controller on training episodes and report what it grew."""

from __future__ import annotations

import argparse

from esper.app.commands.shared import resolve_config, run_logged_episodes
from esper.app.evaluation import controller_stats, episode_row
from esper.app.plots import lifecycle_timeline
from esper.app.reporting import comparison_table, episodes_table
from esper.app.run_directory import RunDirectory, default_run_dir
from esper.leyline import Topology
from esper.simic.episode_seeds import training_episode_seeds
from esper.tamiyo import HeuristicController


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        args,
        {
            "episodes": args.episodes,
            "envs": args.envs,
            "seed": args.seed,
            "backend": args.backend,
            "workers": args.workers,
            "threads": args.threads,
            "epochs": args.epochs,
        },
    )
    seeds = training_episode_seeds(config.run.seed, 0, config.run.episodes)
    task = config.preset.load_data(args.data_dir)
    out = args.out or default_run_dir(config.task, "heuristic")
    with RunDirectory(out, tensorboard=False, unique=args.out is None) as directory:
        directory.write_config({**config.to_dict(), "controller": "heuristic", "episode_seeds": seeds})
        controller = HeuristicController(config.preset.slots, Topology.CNN)
        summaries = run_logged_episodes(
            config, controller, seeds, directory, task, quiet=args.quiet, label="heuristic episodes"
        )
        rows = [episode_row(s) for s in summaries]
        stats = controller_stats("heuristic", summaries)
        directory.write_results(
            {"task": config.task, "controller": "heuristic", "seeds": seeds, "episodes": rows, "stats": stats}
        )
        lifecycle_timeline(
            summaries, config.preset.slots.names(), directory.plots / "lifecycle.png", f"heuristic on {config.task}"
        )
        markdown = "\n\n".join(
            [
                f"# Heuristic on `{config.task}`",
                f"{len(summaries)} episodes of {config.episode_epochs} epochs, run seed {config.run.seed}.",
                comparison_table([stats]),
                "## Episodes",
                episodes_table(rows),
                "## Seed lifecycles\n\n![lifecycle](plots/lifecycle.png)",
            ]
        )
        directory.write_summary(markdown + "\n")
    print(comparison_table([stats]))
    print(f"\nwrote {directory.path}/summary.md")
    return 0
