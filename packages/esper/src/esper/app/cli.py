"""The ``esper`` command line: tasks, train (heuristic | ppo), evaluate, compare, pick-schedule, report, watch.

With no flags every command runs the embedded default task (``digits``). Errors a user can fix (unknown task,
unknown config key, missing data, corrupt checkpoint, an unwritable or full output directory) print one line and
exit with status 2; Ctrl-C and SIGTERM stop cleanly with one line and status 130 / 143.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from esper.app.commands import (
    compare,
    evaluate,
    pick_schedule,
    report,
    tasks_command,
    train_heuristic,
    train_ppo,
    watch,
)
from esper.app.run_config import BACKENDS
from esper.app.signals import SIGINT_EXIT_STATUS, SIGTERM_EXIT_STATUS, Terminated, stop_on_sigterm
from esper.app.tasks import DEFAULT_TASK
from esper.leyline import EsperError
from esper.tamiyo import COMPILE_MODES, register_builtin_policies

Command = Callable[[argparse.Namespace], int]


def _compile_mode(text: str) -> str:
    """``none`` is kept as text: on ``--resume`` it removes the run's compile mode (absent keeps it)."""
    if text != "none" and text not in COMPILE_MODES:
        raise argparse.ArgumentTypeError(f"choose from none, {', '.join(COMPILE_MODES)}")
    return text


def _time_budget(text: str) -> float | str:
    """Minutes, or ``none`` (on ``--resume``: remove the run's time budget)."""
    if text == "none":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes or none, got {text!r}") from None


def _add_common(parser: argparse.ArgumentParser, *, task_default: str | None = DEFAULT_TASK) -> None:
    parser.add_argument("--task", default=task_default, help=f"task preset (see `esper tasks`; default {DEFAULT_TASK})")
    parser.add_argument("--envs", type=int, help="environments run in parallel (default 8)")
    parser.add_argument("--seed", type=int, help="run seed (default 0)")
    parser.add_argument("--out", type=Path, help="output directory (default runs/<task>-<controller>-<time>)")
    parser.add_argument("--data-dir", type=Path, help="dataset directory (CIFAR-10 tasks)")
    parser.add_argument("--config", type=Path, help="TOML file with [run] [env] [reward] [ppo] [policy] sections")
    parser.add_argument("--backend", choices=BACKENDS, help="where envs run (default auto: worker processes on CPU)")
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes (processes backend) or env actors (ray backend); default: cores, or one actor per "
        "env on a Ray cluster",
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads per env process (default: 1 in-process, cores / workers otherwise)"
    )
    parser.add_argument(
        "--ray-address", help="Ray backend: join this cluster (default: $RAY_ADDRESS, else start Ray on this machine)"
    )
    parser.add_argument("--ray-num-cpus", type=int, help="Ray backend: CPUs a Ray started here may use (default: all)")
    parser.add_argument(
        "--ray-cpus-per-actor",
        type=float,
        help="Ray backend: CPUs (and torch threads) per env actor (default: a local Ray's CPUs shared out; 1 on a "
        "cluster)",
    )
    parser.add_argument("--ray-gpus-per-actor", type=float, help="Ray backend: GPUs per env actor (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (for CI and scripts)")
    parser.add_argument(
        "--record-decisions",
        action=argparse.BooleanOptionalAction,
        help="log every decision with the controller's reasons (decision events; default: on, off for train ppo)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esper", description="Grow neural networks while they train, with a learned or rule-based controller."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="list the task presets", description="List the task presets.")
    tasks.set_defaults(handler=tasks_command.run)
    _add_train(commands)
    _add_evaluate_and_compare(commands)
    _add_pick_schedule(commands)
    rebuild = commands.add_parser(
        "report",
        help="(re)build the summary, results and plots of a run directory",
        description="Rebuild summary.md, results.json and the plots of a run from its config and event log.",
    )
    rebuild.add_argument("run", type=Path, help="a run directory written by esper")
    rebuild.set_defaults(handler=report.run)
    _add_watch(commands)
    return parser


def _add_train(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``esper train heuristic`` and ``esper train ppo``."""
    train = commands.add_parser(
        "train", help="train a controller (heuristic or ppo)", description="Train a controller."
    )
    trainers = train.add_subparsers(dest="trainer", required=True, metavar="CONTROLLER")

    heuristic = trainers.add_parser(
        "heuristic",
        help="run the rule-based controller on training episodes",
        description="Run the heuristic controller on training episodes and report what it grew.",
    )
    _add_common(heuristic)
    heuristic.add_argument("--episodes", type=int, help="episodes to run (default 8)")
    heuristic.add_argument("--epochs", type=int, help="epochs per episode (default: the task's)")
    heuristic.set_defaults(handler=train_heuristic.run)

    ppo = trainers.add_parser(
        "ppo",
        help="train the LSTM policy with PPO",
        description="Train the factored LSTM policy with PPO; checkpoints after every update.",
    )
    _add_common(ppo, task_default=None)
    ppo.add_argument("--rounds", type=int, help="PPO rounds; one episode per env each (default 10)")
    ppo.add_argument("--epochs", type=int, help="epochs per episode (default: the task's)")
    ppo.add_argument(
        "--time-budget-minutes",
        type=_time_budget,
        help="stop at a checkpoint before a round that would end after this many minutes (resume continues; "
        "none removes the budget on resume)",
    )
    ppo.add_argument("--resume", type=Path, help="continue the run in this directory from its last checkpoint")
    ppo.add_argument("--device", help="torch device for the policy and envs (default cpu)")
    ppo.add_argument(
        "--compile-mode", type=_compile_mode, help="torch.compile mode for the policy, or none (the default)"
    )
    ppo.set_defaults(handler=train_ppo.run)


def _add_evaluate_and_compare(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``esper evaluate`` (one controller) and ``esper compare`` (several, on the same held-out episodes)."""
    evaluation = commands.add_parser(
        "evaluate",
        help="evaluate one controller on held-out episode seeds",
        description="Evaluate a controller on episode seeds never used in training.",
    )
    _add_common(evaluation)
    evaluation.add_argument(
        "--controller",
        required=True,
        help="heuristic, random, static, schedule:BLUEPRINT, best-schedule:FILE, module:attribute, or a PPO run "
        "directory (stochastic:DIR samples)",
    )
    evaluation.add_argument("--episodes", type=int, help="held-out episodes (default 8)")
    evaluation.add_argument("--device", help="torch device (default cpu)")
    evaluation.set_defaults(handler=evaluate.run)

    comparison = commands.add_parser(
        "compare",
        help="compare controllers on the same held-out episodes",
        description="Run several controllers on the same held-out episode seeds and tabulate them side by side.",
    )
    _add_common(comparison)
    comparison.add_argument(
        "--controllers",
        default="heuristic,random,static",
        help="comma-separated: heuristic, random, static, schedule:BLUEPRINT, schedules (every blueprint of the "
        "task), best-schedule:FILE, module:attribute, PPO run directories (default heuristic,random,static)",
    )
    comparison.add_argument(
        "--baseline", help="controller the paired differences are taken against (a label, or as in --controllers)"
    )
    comparison.add_argument("--episodes", type=int, help="held-out episodes (default 8)")
    comparison.add_argument("--device", help="torch device (default cpu)")
    comparison.set_defaults(handler=compare.run)


def _add_pick_schedule(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``esper pick-schedule``: model selection among the fixed schedules, on training-range seeds."""
    picking = commands.add_parser(
        "pick-schedule",
        help="pick the best fixed schedule on training-range episode seeds",
        description="Run every fixed schedule of the task on training-range episode seeds (never evaluation "
        "seeds) and write the one with the best mean final validation accuracy to best_schedule.json, for "
        "esper compare --controllers best-schedule:DIR.",
    )
    _add_common(picking)
    picking.add_argument("--episodes", type=int, help="selection episodes derived from --seed (default 8)")
    picking.add_argument(
        "--episode-seeds", help="comma-separated training-range episode seeds to use instead (below 2**31)"
    )
    picking.add_argument("--device", help="torch device (default cpu)")
    picking.set_defaults(handler=pick_schedule.run)


def _add_watch(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``esper watch RUN_DIR``: the live terminal view."""
    watching = commands.add_parser(
        "watch",
        help="watch a run live in the terminal (q quits)",
        description="Follow a run directory's event log and show its progress, curves, slot lifecycles, per-head "
        "entropy and KL and its latest decisions; q or Ctrl-C quits.",
    )
    watching.add_argument("run", type=Path, help="a run directory written by esper (running or finished)")
    watching.add_argument("--once", action="store_true", help="draw one frame and exit")
    watching.add_argument("--interval", type=float, default=1.0, help="seconds between redraws (default 1)")
    watching.set_defaults(handler=watch.run)


def _line(message: str, error: BaseException) -> str:
    """``message`` and the error's notes (such as how to resume) on one line."""
    return "; ".join([message, *getattr(error, "__notes__", [])])


def _os_error(error: OSError) -> str:
    """The cause first (ENOSPC, EROFS, ENOTDIR, ... named as such), then the file."""
    code = errno.errorcode.get(error.errno, "") if error.errno is not None else ""
    message = (error.strerror or str(error)) + (f" ({code})" if code else "")
    return message + (f": {error.filename}" if error.filename is not None else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    register_builtin_policies()
    handler: Command = args.handler
    try:
        with stop_on_sigterm():
            return handler(args)
    except EsperError as error:
        print(f"esper: error: {_line(str(error), error)}", file=sys.stderr)
        return 2
    except OSError as error:  # output problems: read-only filesystem, a file in the way, a full disk
        print(f"esper: error: {_line(_os_error(error), error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(f"esper: {_line('interrupted', error)}", file=sys.stderr)
        return SIGINT_EXIT_STATUS
    except Terminated as error:
        print(f"esper: {_line(str(error), error)}", file=sys.stderr)
        return SIGTERM_EXIT_STATUS


if __name__ == "__main__":
    sys.exit(main())
