"""``esper report RUN``: rebuild the summary, results and plots of a run directory from its files.

For a run killed after its last checkpoint but before its summary, or to look at a run still training.
"""

from __future__ import annotations

import argparse

from esper.app.ppo_report import write_ppo_report
from esper.app.run_config import from_dict
from esper.app.run_directory import read_run_config
from esper.leyline import ConfigError


def run(args: argparse.Namespace) -> int:
    stored = read_run_config(args.run)
    controller = stored.get("controller")
    if controller != "ppo":
        raise ConfigError(f"{args.run} is a {controller!r} run; esper report rebuilds PPO runs")
    if not write_ppo_report(args.run, from_dict(stored)):
        raise ConfigError(f"{args.run} has no completed round in its event log; nothing to report")
    print(f"wrote {args.run}/summary.md and {args.run}/results.json")
    return 0
