"""``esper report RUN``: rebuild the summary, results and plots of a run directory from its files.

For a run killed after its last checkpoint but before its summary, or to look at a PPO run that still trains.
Everything comes from ``config.json`` and ``events.jsonl``: a PPO run's rounds, or the episodes of a heuristic,
evaluate, compare or pick-schedule run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esper.app.episode_reports import (
    COMPARE,
    EVALUATE,
    PICK_SCHEDULE,
    TRAIN_HEURISTIC,
    episodes_from_log,
    write_comparison_report,
    write_controller_report,
    write_schedule_pick_report,
)
from esper.app.ppo_report import write_ppo_report
from esper.app.run_config import from_dict
from esper.app.run_directory import read_run_config
from esper.leyline import ConfigError
from esper.simic.envs.episode_records import EpisodeSummary


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run
    stored = read_run_config(run_dir)
    config = from_dict(stored)
    command = "train ppo" if stored.get("controller") == "ppo" else stored.get("command")
    if command == "train ppo":
        if not write_ppo_report(run_dir, config, stored["data"]):
            raise ConfigError(f"{run_dir} has no completed round in its event log; nothing to report")
    elif command in (TRAIN_HEURISTIC, EVALUATE, COMPARE, PICK_SCHEDULE):
        logged = episodes_from_log(run_dir)
        seeds: list[int] = stored["episode_seeds"]
        if command in (COMPARE, PICK_SCHEDULE):
            labels: list[str] = stored["controllers"]
            names: list[str] = stored["controller_names"]
        else:  # one controller: whatever name its episodes were logged under
            labels, names = [stored["controller"]], list(logged)[:1]
        episodes = {label: logged.get(name, []) for label, name in zip(labels, names, strict=False)}
        _check_complete(run_dir, labels, seeds, episodes)
        if command == COMPARE:
            write_comparison_report(run_dir, config, stored["data"], labels, stored["baseline"], seeds, episodes)
        elif command == PICK_SCHEDULE:
            write_schedule_pick_report(run_dir, config, stored["data"], labels, seeds, episodes)
        else:
            write_controller_report(run_dir, command, config, stored["data"], labels[0], seeds, episodes[labels[0]])
    else:
        raise ConfigError(f"{run_dir}/config.json does not say which command wrote it; nothing to rebuild")
    print(f"wrote {run_dir}/summary.md and {run_dir}/results.json")
    return 0


def _check_complete(
    run_dir: Path, labels: list[str], seeds: list[int], episodes: dict[str, list[EpisodeSummary]]
) -> None:
    for label in labels:
        found = [e.seed for e in episodes.get(label, [])]
        if found != seeds:
            raise ConfigError(
                f"{run_dir} logged {len(found)} of the {len(seeds)} episodes of {label!r}; the run did not finish, "
                "run it again"
            )
