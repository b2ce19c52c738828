"""``esper train ppo``: train the LSTM policy with PPO over parallel host-training episodes.

Writes the resolved config, a JSONL log (every epoch, episode and update), TensorBoard scalars, a checkpoint after
every update, and a summary with learning curves. ``--resume DIR`` continues a run from its last checkpoint with
the run's own config (``--rounds`` may extend it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from esper.app.backends import make_pool
from esper.app.commands.shared import resolve_config
from esper.app.evaluation import episode_row
from esper.app.plots import learning_curves, lifecycle_timeline
from esper.app.progress import Progress
from esper.app.reporting import episodes_table, markdown_table
from esper.app.run_config import RunConfig, from_dict
from esper.app.run_directory import RunDirectory, checkpoint_file, default_run_dir, read_run_config
from esper.leyline import HEAD_ORDER, CheckpointError, ConfigError, PolicyBundle, Topology
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint
from esper.simic.episode_records import StepResult
from esper.simic.ppo_training import PPORunConfig, PPOTraining, RoundReport
from esper.simic.task_data import TaskData
from esper.tamiyo import create_policy_from_config

_RESUME_FORBIDS = ("task", "envs", "epochs", "seed", "config")


def run(args: argparse.Namespace) -> int:
    # Everything that can be refused (config, checkpoint, data, policy) is checked before the run directory is
    # created or reopened, so bad input leaves nothing behind.
    checkpoint: TrainingCheckpoint | None = None
    if args.resume is not None:
        given = [name for name in _RESUME_FORBIDS if getattr(args, name) is not None]
        if given:
            raise ConfigError(
                f"--resume continues the run with its own config; drop {', '.join('--' + g for g in given)}"
            )
        config = _resumed_config(from_dict(read_run_config(args.resume)), args)
        checkpoint = load_checkpoint(checkpoint_file(args.resume))
        _check_checkpoint_matches(checkpoint, config)
        policy_config = checkpoint.policy_build_config
    else:
        args.task = args.task or "digits"
        config = resolve_config(
            args,
            {
                "rounds": args.rounds,
                "envs": args.envs,
                "epochs": args.epochs,
                "seed": args.seed,
                "device": args.device,
                "compile_mode": args.compile_mode,
                "backend": args.backend,
                "workers": args.workers,
                "threads": args.threads,
                "time_budget_minutes": args.time_budget_minutes,
            },
        )
        policy_config = {
            "kind": config.policy.kind,
            "slot_config": list(config.preset.slots.names()),
            "topology": Topology.CNN.value,
            "sizes": dict(config.policy.sizes),
        }
    bundle = build_policy(policy_config, config)
    task = config.preset.load_data(args.data_dir)
    if args.resume is not None:
        directory = RunDirectory(args.resume, resume=True)
    else:
        directory = RunDirectory(args.out or default_run_dir(config.task, "ppo"))
    with directory:
        directory.write_config({**config.to_dict(), "controller": "ppo"})
        _train(config, bundle, directory, checkpoint, task, args.quiet)
    print(f"wrote {directory.path}/summary.md (checkpoint: {directory.checkpoint_path})")
    return 0


def build_policy(policy_config: Mapping[str, object], config: RunConfig) -> PolicyBundle:
    """The policy bundle of a run, its initial weights drawn from the run seed (same seed, same policy). The
    global CPU generator is seeded only inside ``fork_rng``, so nothing else sees the draw."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.run.seed)
        return create_policy_from_config(policy_config, device=config.run.device, compile_mode=config.run.compile_mode)


def _resumed_config(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    run = config.run
    changes: dict[str, Any] = {}
    for name in ("rounds", "device", "compile_mode", "backend", "workers", "threads", "time_budget_minutes"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    run = dataclasses.replace(run, **changes)
    return dataclasses.replace(config, run=run, env=dataclasses.replace(config.env, device=run.device))


def _check_checkpoint_matches(checkpoint: TrainingCheckpoint, config: RunConfig) -> None:
    saved = checkpoint.config
    expected = config.to_dict()
    for key in ("task", "policy", "env", "reward", "ppo"):
        if saved.get(key) != expected[key]:
            raise CheckpointError(
                f"the checkpoint does not belong to this run: its {key!r} settings differ from config.json"
            )
    if checkpoint.rounds_completed >= config.run.rounds:
        raise ConfigError(
            f"the run already completed {checkpoint.rounds_completed} rounds; pass --rounds N with N > "
            f"{checkpoint.rounds_completed} to train further"
        )


def _train(
    config: RunConfig,
    bundle: PolicyBundle,
    directory: RunDirectory,
    checkpoint: TrainingCheckpoint | None,
    task: TaskData,
    quiet: bool,
) -> None:
    preset = config.preset
    factory = preset.model_factory(preset.slots, config.episode_epochs)
    pool = make_pool(config, task, factory, config.run.envs)
    run = PPORunConfig(config.run.rounds, config.run.envs, config.episode_epochs, config.run.seed, config.ppo)
    training = PPOTraining(bundle, pool, run, checkpoint_path=directory.checkpoint_path, run_config=config.to_dict())
    if checkpoint is not None:
        training.resume(checkpoint)
        directory.event("resume", rounds_completed=checkpoint.rounds_completed, rounds=config.run.rounds)
    steps_per_round = config.run.envs * config.episode_epochs
    last_round: list[RoundReport] = []
    try:
        with Progress(
            config.run.rounds * steps_per_round,
            "PPO rounds",
            quiet=quiet,
            initial=training.rounds_completed * steps_per_round,
        ) as progress:
            current = [training.rounds_completed]

            def on_step(env_ids: Sequence[int], results: Sequence[StepResult]) -> None:
                for env_id, result in zip(env_ids, results, strict=True):
                    directory.event(
                        "epoch",
                        round=current[0],
                        env=env_id,
                        epoch=result.observation.epoch,
                        val_accuracy=result.observation.val_accuracy,
                        reward=result.reward,
                        op=result.action.op.name,
                        slot=result.action.slot,
                        success=result.action_success,
                    )
                progress.advance(len(results), round=current[0])

            def on_round(report: RoundReport) -> None:
                current[0] = report.round_index + 1
                _log_round(directory, report)
                last_round[:] = [report]
                progress.note(
                    f"round {report.round_index}: accuracy {report.mean_final_accuracy:.1f} %, "
                    f"return {report.mean_reward:.3f}, EV {report.update.explained_variance:.2f}"
                )

            budget = config.run.time_budget_minutes
            training.run(
                on_round=on_round, on_step=on_step, time_budget_seconds=None if budget is None else budget * 60.0
            )
            if training.rounds_completed < config.run.rounds:
                progress.note(
                    f"time budget reached after {training.rounds_completed} rounds; "
                    f"continue with --resume {directory.path}"
                )
    finally:
        pool.close()
    _write_summary(config, directory, last_round[0] if last_round else None)


def _log_round(directory: RunDirectory, report: RoundReport) -> None:
    update = report.update.flat()
    accuracies = [e.final_accuracy for e in report.episodes]
    mean_params = sum(e.params_added for e in report.episodes) / len(report.episodes)
    record = {
        "round": report.round_index,
        "mean_accuracy": report.mean_final_accuracy,
        "min_accuracy": min(accuracies),
        "max_accuracy": max(accuracies),
        "mean_return": report.mean_reward,
        "mean_params_added": mean_params,
        "seconds": report.seconds,
        "update": update,
    }
    directory.event("round", **record)
    for index, episode in enumerate(report.episodes):
        directory.event("episode", round=report.round_index, env=index, **episode.as_dict())
    directory.scalars(
        report.round_index,
        {
            "episode/final_accuracy": report.mean_final_accuracy,
            "episode/return": report.mean_reward,
            "episode/params_added": mean_params,
            **{f"ppo/{key}": value for key, value in update.items()},
        },
    )


def _rounds_from_log(directory: RunDirectory) -> list[dict[str, Any]]:
    """Every round of the run, including those of earlier (resumed) sessions; the latest record wins."""
    rounds: dict[int, dict[str, Any]] = {}
    with (directory.path / "events.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            if event.get("event") == "round":
                rounds[event["round"]] = event
    return [rounds[k] for k in sorted(rounds)]


def _write_summary(config: RunConfig, directory: RunDirectory, last: RoundReport | None) -> None:
    rounds = _rounds_from_log(directory)
    if not rounds:
        return
    learning_curves(rounds, directory.plots / "learning_curves.png")
    sections = [
        f"# PPO on `{config.task}`",
        f"{len(rounds)} rounds x {config.run.envs} envs x {config.episode_epochs} epochs, run seed "
        f"{config.run.seed}, policy `{config.policy.kind}`.",
        "## Learning curves\n\n![learning curves](plots/learning_curves.png)",
        "## Rounds",
        markdown_table(
            [
                "round",
                "mean final acc %",
                "min",
                "max",
                "mean return",
                "params added",
                "explained var",
                "approx KL",
                "op entropy",
                "early stop",
            ],
            [
                [
                    r["round"],
                    f"{r['mean_accuracy']:.2f}",
                    f"{r['min_accuracy']:.1f}",
                    f"{r['max_accuracy']:.1f}",
                    f"{r['mean_return']:.3f}",
                    f"{r['mean_params_added']:.0f}",
                    _fmt(r["update"].get("explained_variance")),
                    _fmt(r["update"].get("approx_kl"), 4),
                    _fmt(r["update"].get("heads.op.entropy")),
                    "yes" if r["update"].get("early_stopped") else "",
                ]
                for r in rounds
            ],
        ),
        "## Per-head health in the last round",
        "Normalized entropy over the steps where the head mattered for the op and had more than one allowed "
        "action (a forced choice has entropy 0 by definition).",
        markdown_table(
            ["head", "normalized entropy", "KL", "clip fraction", "share of steps it mattered", "with a choice"],
            [
                [
                    head.value,
                    _fmt(rounds[-1]["update"].get(f"heads.{head.value}.entropy")),
                    _fmt(rounds[-1]["update"].get(f"heads.{head.value}.approx_kl"), 4),
                    _fmt(rounds[-1]["update"].get(f"heads.{head.value}.clip_fraction")),
                    _fmt(rounds[-1]["update"].get(f"heads.{head.value}.relevant_fraction")),
                    _fmt(rounds[-1]["update"].get(f"heads.{head.value}.choice_fraction")),
                ]
                for head in HEAD_ORDER
            ],
        ),
    ]
    results: dict[str, Any] = {"task": config.task, "rounds": rounds}
    if last is not None:
        rows = [episode_row(e) for e in last.episodes]
        lifecycle_timeline(
            last.episodes,
            config.preset.slots.names(),
            directory.plots / "lifecycle.png",
            f"round {last.round_index} episodes (training seeds)",
        )
        sections += [
            f"## Episodes of the last round ({last.round_index})",
            episodes_table(rows),
            "![lifecycle](plots/lifecycle.png)",
        ]
        results["last_round_episodes"] = rows
    directory.write_results(results)
    directory.write_summary("\n\n".join(sections) + "\n")


def _fmt(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"
