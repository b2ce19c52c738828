"""``esper compare``: several controllers on the same held-out episode seeds, side by side.

Every controller faces exactly the same episodes (same data order and host initialization per seed), so the
differences are paired: the table reports each controller's mean with a 95 % bootstrap interval, and the paired
difference against a baseline controller (the heuristic when it is in the list; ``--baseline`` takes a label of the
table or a controller as written in ``--controllers``, e.g. ``best-schedule:runs/pick``).
"""

from __future__ import annotations

import argparse
import dataclasses

from esper.app.commands.shared import (
    build_controllers,
    data_record,
    resolve_evaluation_config,
    run_logged_episodes,
    warn_on_other_episode_lengths,
)
from esper.app.controllers import ControllerSpec, parse_controllers, with_distinct_labels
from esper.app.episode_reports import COMPARE, write_comparison_report
from esper.app.reporting import comparison_table, paired_table
from esper.app.run_directory import RunDirectory, default_run_dir
from esper.leyline import ConfigError, Topology
from esper.simic.envs.episode_records import EpisodeSummary
from esper.simic.envs.episode_seeds import evaluation_episode_seeds


def run(args: argparse.Namespace) -> int:
    config = resolve_evaluation_config(args)
    specs = with_distinct_labels(parse_controllers(args.controllers, config.preset.topology))
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels) or not specs:
        raise ConfigError(f"--controllers needs distinct controllers, got {args.controllers!r}")
    baseline = _baseline_label(args.baseline, specs, config.preset.topology) if args.baseline else None
    baseline = baseline or ("heuristic" if "heuristic" in labels else labels[0])
    seeds = evaluation_episode_seeds(config.run.seed, config.run.episodes)
    out = args.out or default_run_dir(config.task, "compare")
    episodes: dict[str, list[EpisodeSummary]] = {}
    warn_on_other_episode_lengths(specs, config)
    controllers = build_controllers(specs, config)
    loaded = config.preset.load_data(args.data_dir)
    task, data = loaded.task, data_record(config, loaded)
    with RunDirectory(out, tensorboard=False, unique=args.out is None) as directory:
        directory.write_config(
            {
                **config.to_dict(),
                "command": COMPARE,
                "controllers": labels,
                "controller_names": [controller.name for controller in controllers],  # as the log names them
                "baseline": baseline,
                "episode_seeds": seeds,
                "data": data,
            }
        )
        for spec, controller in zip(specs, controllers, strict=True):
            episodes[spec.label] = run_logged_episodes(
                config, controller, seeds, directory, task, quiet=args.quiet, label=spec.label
            )
        stats, paired = write_comparison_report(directory.path, config, data, labels, baseline, seeds, episodes)
    print(comparison_table(stats, metric=config.preset.metric))
    if paired:
        print()
        print(paired_table(baseline, paired, metric=config.preset.metric))
    print(f"\nwrote {directory.path}/summary.md and {directory.path}/results.json")
    return 0


def _baseline_label(text: str, specs: list[ControllerSpec], topology: Topology) -> str:
    """``--baseline`` as a label of the table or as the controller was written in ``--controllers``."""
    labels = [spec.label for spec in specs]
    if text in labels:
        return text
    try:
        parsed = ControllerSpec.parse(text, topology)
    except ConfigError:
        parsed = None
    for spec in specs:
        if parsed is not None and dataclasses.replace(spec, label=parsed.label) == parsed:
            return spec.label
    raise ConfigError(f"--baseline {text!r} is not among the controllers {labels}")
