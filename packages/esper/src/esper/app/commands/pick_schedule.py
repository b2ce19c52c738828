"""``esper pick-schedule``: run every fixed schedule of the task on training-range episode seeds and write the best.

The choice maximizes the mean final validation accuracy on selection seeds (training range, never evaluation
seeds, never the test split), so the schedule a learned controller is later compared with on held-out seeds was
not picked by looking at them. ``esper compare --controllers best-schedule:<run dir>`` uses the choice.
"""

from __future__ import annotations

import argparse

from esper.app.commands.shared import build_controllers, data_record, resolve_evaluation_config, run_logged_episodes
from esper.app.controllers import parse_controllers
from esper.app.episode_reports import PICK_SCHEDULE, write_schedule_pick_report
from esper.app.run_directory import RunDirectory, default_run_dir
from esper.app.schedule_choice import SCHEDULE_CHOICE_FILE
from esper.leyline import ConfigError
from esper.simic.envs.episode_records import EpisodeSummary
from esper.simic.envs.episode_seeds import is_evaluation_seed, selection_episode_seeds


def episode_seeds(text: str | None, run_seed: int, episodes: int) -> list[int]:
    """``--episode-seeds`` (comma-separated, training range only), else ``episodes`` selection seeds."""
    if text is None:
        return selection_episode_seeds(run_seed, episodes)
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--episode-seeds needs comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--episode-seeds needs distinct non-negative seeds, got {text!r}")
    held_out = [seed for seed in seeds if is_evaluation_seed(seed)]
    if held_out:
        raise ConfigError(
            f"--episode-seeds {held_out} are evaluation seeds (at or above 2**31): a schedule must be picked on "
            "training-range seeds only"
        )
    return seeds


def run(args: argparse.Namespace) -> int:
    config = resolve_evaluation_config(args)
    seeds = episode_seeds(args.episode_seeds, config.run.seed, config.run.episodes)
    specs = parse_controllers("schedules", config.preset.topology)
    labels = [spec.label for spec in specs]
    controllers = build_controllers(specs, config)
    out = args.out or default_run_dir(config.task, "pick-schedule")
    loaded = config.preset.load_data(args.data_dir)
    task, data = loaded.task, data_record(config, loaded)
    episodes: dict[str, list[EpisodeSummary]] = {}
    with RunDirectory(out, tensorboard=False, unique=args.out is None) as directory:
        directory.write_config(
            {
                **config.to_dict(),
                "command": PICK_SCHEDULE,
                "controllers": labels,
                "controller_names": [controller.name for controller in controllers],
                "episode_seeds": seeds,
                "data": data,
            }
        )
        for spec, controller in zip(specs, controllers, strict=True):
            episodes[spec.label] = run_logged_episodes(
                config, controller, seeds, directory, task, quiet=args.quiet, label=spec.label
            )
        table, best = write_schedule_pick_report(directory.path, config, data, labels, seeds, episodes)
    print(table)
    print(f"\nbest fixed schedule on {len(seeds)} training-range seeds: {best}")
    print(f"wrote {directory.path}/{SCHEDULE_CHOICE_FILE} (use it as best-schedule:{directory.path})")
    return 0
