"""``esper evaluate``: one controller on held-out episode seeds (never used in training)."""

from __future__ import annotations

import argparse

from esper.app.commands.shared import (
    build_controllers,
    data_record,
    resolve_evaluation_config,
    run_logged_episodes,
    warn_on_other_episode_lengths,
)
from esper.app.controllers import ControllerSpec
from esper.app.episode_reports import EVALUATE, write_controller_report
from esper.app.evaluation import episode_row
from esper.app.reporting import comparison_table, episodes_table
from esper.app.run_directory import RunDirectory, default_run_dir
from esper.simic.envs.episode_seeds import evaluation_episode_seeds


def run(args: argparse.Namespace) -> int:
    config = resolve_evaluation_config(args)
    spec = ControllerSpec.parse(args.controller, config.preset.topology)
    warn_on_other_episode_lengths([spec], config)
    (controller,) = build_controllers([spec], config)
    seeds = evaluation_episode_seeds(config.run.seed, config.run.episodes)
    out = args.out or default_run_dir(config.task, f"evaluate-{spec.builtin or 'learned'}")
    loaded = config.preset.load_data(args.data_dir)
    task, data = loaded.task, data_record(config, loaded)
    with RunDirectory(out, tensorboard=False, unique=args.out is None) as directory:
        directory.write_config(
            {**config.to_dict(), "command": EVALUATE, "controller": spec.label, "episode_seeds": seeds, "data": data}
        )
        summaries = run_logged_episodes(
            config, controller, seeds, directory, task, quiet=args.quiet, label=f"evaluating {spec.label}"
        )
        stats = write_controller_report(directory.path, EVALUATE, config, data, spec.label, seeds, summaries)
    rows = [episode_row(s) for s in summaries]
    print(episodes_table(rows, metric=config.preset.metric))
    print()
    print(comparison_table([stats], metric=config.preset.metric))
    print(f"\nwrote {directory.path}/summary.md")
    return 0
