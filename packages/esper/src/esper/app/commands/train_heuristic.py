"""``esper train heuristic``: run the rule-based controller on training episodes and report what it grew."""

from __future__ import annotations

import argparse

from esper.app.commands.shared import backend_flags, data_record, resolve_config, run_logged_episodes
from esper.app.episode_reports import TRAIN_HEURISTIC, write_controller_report
from esper.app.reporting import comparison_table
from esper.app.run_directory import RunDirectory, default_run_dir
from esper.simic.envs.episode_seeds import training_episode_seeds
from esper.tamiyo import HeuristicController


def run(args: argparse.Namespace) -> int:
    config = resolve_config(
        args,
        {
            "episodes": args.episodes,
            "envs": args.envs,
            "seed": args.seed,
            "epochs": args.epochs,
            **backend_flags(args),
        },
    )
    seeds = training_episode_seeds(config.run.seed, 0, config.run.episodes)
    loaded = config.preset.load_data(args.data_dir)
    task, data = loaded.task, data_record(config, loaded)
    out = args.out or default_run_dir(config.task, "heuristic")
    with RunDirectory(out, tensorboard=False, unique=args.out is None) as directory:
        directory.write_config(
            {
                **config.to_dict(),
                "command": TRAIN_HEURISTIC,
                "controller": "heuristic",
                "episode_seeds": seeds,
                "data": data,
            }
        )
        controller = HeuristicController(config.preset.slots, config.preset.topology)
        summaries = run_logged_episodes(
            config, controller, seeds, directory, task, quiet=args.quiet, label="heuristic episodes"
        )
        stats = write_controller_report(directory.path, TRAIN_HEURISTIC, config, data, "heuristic", seeds, summaries)
    print(comparison_table([stats], metric=config.preset.metric))
    print(f"\nwrote {directory.path}/summary.md")
    return 0
