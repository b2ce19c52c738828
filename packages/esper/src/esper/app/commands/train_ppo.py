"""``esper train ppo``: train the LSTM policy with PPO over parallel host-training episodes.

Writes the resolved config, a JSONL log (every epoch, episode, update and validation), TensorBoard scalars, a
checkpoint after every update (``latest.pt``) and the one whose argmax policy validated best (``best.pt``, see
``esper.app.validation``), and a summary with learning curves. ``--resume DIR`` continues a run from its last
checkpoint with the run's own config (``--rounds`` may extend it, ``--compile-mode`` and ``--time-budget-minutes``
change, ``none`` removes them).

A run is identified by a random run id (in ``config.json`` and in every checkpoint) and the settings that shape
it; a checkpoint from another run is refused. One process trains a run directory at a time (``RunLock``). Every
fault during training (a dead env worker, a full disk, Ctrl-C, SIGTERM) ends with one line that says how to
resume; the last checkpoint is intact because checkpoints are replaced atomically.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from esper.app.backends import make_pool, require_backend
from esper.app.commands.shared import backend_flags, data_record, resolve_config
from esper.app.console import note
from esper.app.controllers import ControllerSpec, build_controller, policy_from_checkpoint
from esper.app.decision_events import log_decision
from esper.app.epoch_events import EpochLog
from esper.app.ppo_report import STOP_EVENT, TIME_BUDGET_REACHED, write_ppo_report
from esper.app.progress import Progress
from esper.app.reporting import short_metric
from esper.app.run_config import BACKEND_KEYS, LOGGING_KEYS, RunConfig, check_device, from_dict, override_run
from esper.app.run_directory import (
    RunDirectory,
    best_checkpoint_file,
    checkpoint_file,
    default_run_dir,
    read_run_config,
)
from esper.app.run_lock import RunLock
from esper.app.signals import Terminated
from esper.app.validation import ValidationResult, best_score, save_best, validate, validation_due
from esper.leyline import CheckpointError, ConfigError, EsperError, NonFiniteError, PolicyBundle
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint, seed_rng_states
from esper.simic.envs.episode_records import StepResult
from esper.simic.envs.task_data import TaskData
from esper.simic.episode_loop import ExplainedDecision
from esper.simic.ppo.updater import PPOUpdater
from esper.simic.training import PPORunConfig, PPOTraining, RoundReport
from esper.simic.warm_start import warm_start
from esper.tamiyo import create_policy

_RESUME_FORBIDS = ("task", "envs", "epochs", "seed", "config", "out")
#: The run settings that shape what a run computes (with the task, env, reward, ppo and policy sections).
_SHAPING_RUN_SETTINGS = ("envs", "epochs", "seed")


def run(args: argparse.Namespace) -> int:
    # Everything that can be refused (config, checkpoint, data, policy) is checked before the run directory is
    # created or changed, so bad input leaves nothing behind.
    if args.resume is not None:
        return _resume(args)
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
            "time_budget_minutes": args.time_budget_minutes,
            **backend_flags(args),
        },
    )
    if config.warm_start.demonstrator is not None:
        ControllerSpec.parse(config.warm_start.demonstrator, config.preset.topology)  # refused before any output
    bundle = build_policy(config)
    loaded = config.preset.load_data(args.data_dir)
    task, data = loaded.task, data_record(config, loaded)
    run_id = uuid.uuid4().hex
    out = args.out or default_run_dir(config.task, "ppo")
    seed_rng_states(config.run.seed)
    with RunDirectory(out, unique=args.out is None) as directory, RunLock(directory.path):
        _train(config, run_id, bundle, directory, None, None, task, data, args.quiet)
    print(f"wrote {directory.path}/summary.md (checkpoint: {directory.checkpoint_path})")
    return 0


def _resume(args: argparse.Namespace) -> int:
    given = [name for name in _RESUME_FORBIDS if getattr(args, name) is not None]
    if given:
        raise ConfigError(f"--resume continues the run with its own config; drop {', '.join('--' + g for g in given)}")
    run_dir: Path = args.resume
    stored = read_run_config(run_dir)
    with RunLock(run_dir):
        config = override_run(
            from_dict(stored),
            {
                name: getattr(args, name)
                for name in ("rounds", "device", "compile_mode", "time_budget_minutes", *BACKEND_KEYS, *LOGGING_KEYS)
            },
        )
        check_device(config.run.device)
        require_backend(config)
        run_id = stored.get("run_id")
        if not isinstance(run_id, str):
            raise ConfigError(f"{run_dir}/config.json has no run id; it was not written by this Esper")
        checkpoint = load_checkpoint(checkpoint_file(run_dir))
        _check_checkpoint_matches(checkpoint, config, run_id)
        if checkpoint.rounds_completed >= config.run.rounds:
            if not (run_dir / "summary.md").is_file() and write_ppo_report(run_dir, config, stored["data"]):
                print(f"the run was already complete; wrote {run_dir}/summary.md")
                return 0
            raise ConfigError(
                f"the run already completed {checkpoint.rounds_completed} rounds; pass --rounds N with N > "
                f"{checkpoint.rounds_completed} to train further"
            )
        # Every part of the checkpoint is checked before the run directory is touched.
        bundle = policy_from_checkpoint(checkpoint, device=config.run.device, compile_mode=config.run.compile_mode)
        PPOUpdater(bundle, config.ppo, total_rounds=config.run.rounds).load_state_dict(checkpoint.updater_state)
        best_so_far = best_score(best_checkpoint_file(run_dir))
        loaded = config.preset.load_data(args.data_dir)
        task, data = loaded.task, data_record(config, loaded)
        with RunDirectory(run_dir, resume_from=checkpoint.rounds_completed) as directory:
            _train(config, run_id, bundle, directory, checkpoint, best_so_far, task, data, args.quiet)
    print(f"wrote {run_dir}/summary.md (checkpoint: {checkpoint_file(run_dir)})")
    return 0


def build_policy(config: RunConfig) -> PolicyBundle:
    """The run's policy, built by tamiyo's factory for the task's slots and topology, its initial weights drawn
    from the run seed (same seed, same policy). The global CPU generator is seeded only inside ``fork_rng``, so
    nothing else sees the draw."""
    preset = config.preset
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.run.seed)
        return create_policy(
            config.policy.kind,
            preset.slots,
            topology=preset.topology,
            device=config.run.device,
            compile_mode=config.run.compile_mode,
            **config.policy.sizes,
        )


def _checkpoint_config(config: RunConfig, run_id: str) -> dict[str, Any]:
    """What a checkpoint records of its run: every setting, and the run id."""
    return {**config.to_dict(), "run_id": run_id}


def _episode_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a run config that define its episodes and updates. The device is left out: it says where the
    run computes, not what it computes, so a run may continue on another device."""
    settings = {key: config.get(key) for key in ("task", "policy", "env", "reward", "gates", "ppo", "warm_start")}
    if isinstance(settings["env"], Mapping):
        settings["env"] = {k: v for k, v in settings["env"].items() if k != "device"}
    return settings


def _check_checkpoint_matches(checkpoint: TrainingCheckpoint, config: RunConfig, run_id: str) -> None:
    saved = checkpoint.config
    if saved.get("run_id") != run_id:
        raise CheckpointError(
            f"the checkpoint does not belong to this run: it was written by run {saved.get('run_id')!r}, "
            f"config.json is run {run_id!r}"
        )
    expected = config.to_dict()
    saved_settings = _episode_settings(saved)
    expected_settings = _episode_settings(expected)
    for key in expected_settings:
        if saved_settings[key] != expected_settings[key]:
            raise CheckpointError(
                f"the checkpoint does not belong to this run: its {key!r} settings differ from config.json"
            )
    saved_run = saved.get("run")
    for key in _SHAPING_RUN_SETTINGS:
        if not isinstance(saved_run, dict) or saved_run.get(key) != expected["run"][key]:
            raise CheckpointError(
                f"the checkpoint does not belong to this run: its 'run.{key}' setting differs from config.json"
            )


def _resume_hint(run_dir: Path) -> str:
    try:
        rounds = load_checkpoint(checkpoint_file(run_dir)).rounds_completed
    except CheckpointError:
        return f"no round was completed, so there is nothing to resume in {run_dir}"
    return f"the checkpoint after {rounds} rounds is intact: continue with `esper train ppo --resume {run_dir}`"


def _train(
    config: RunConfig,
    run_id: str,
    bundle: PolicyBundle,
    directory: RunDirectory,
    checkpoint: TrainingCheckpoint | None,
    best_so_far: float | None,
    task: TaskData,
    data: dict[str, Any],
    quiet: bool,
) -> None:
    directory.write_config({**config.to_dict(), "controller": "ppo", "run_id": run_id, "data": data})
    try:
        stopped_early = _run_rounds(config, run_id, bundle, directory, checkpoint, best_so_far, task, quiet)
    except (EsperError, OSError, KeyboardInterrupt, Terminated) as error:
        error.add_note(_resume_hint(directory.path))
        raise
    if stopped_early is not None:
        directory.event(STOP_EVENT, reason=TIME_BUDGET_REACHED, rounds_completed=stopped_early)
        note(
            f"time budget reached after {stopped_early} of {config.run.rounds} rounds; "
            f"continue with `esper train ppo --resume {directory.path}`"
        )
    write_ppo_report(directory.path, config, data)


def _run_rounds(
    config: RunConfig,
    run_id: str,
    bundle: PolicyBundle,
    directory: RunDirectory,
    checkpoint: TrainingCheckpoint | None,
    best_so_far: float | None,
    task: TaskData,
    quiet: bool,
) -> int | None:
    """Train the remaining rounds, validating when due; the number of rounds completed if the time budget stopped
    the run early. ``best_so_far``: the score of the run's ``best.pt`` (None: there is none yet)."""
    preset = config.preset
    factory = preset.model_factory(preset.slots, config.episode_epochs, config.gate_config)
    pool = make_pool(config, task, factory, config.run.envs)
    run = PPORunConfig(config.run.rounds, config.run.envs, config.episode_epochs, config.run.seed, config.ppo)
    training = PPOTraining(
        bundle, pool, run, checkpoint_path=directory.checkpoint_path, run_config=_checkpoint_config(config, run_id)
    )
    if checkpoint is not None:
        training.resume(checkpoint)
        directory.event("resume", rounds_completed=checkpoint.rounds_completed, rounds=config.run.rounds)
    elif config.warm_start.demonstrator is not None:
        _warm_start(config, training, directory, quiet)
    steps_per_round = config.run.envs * config.episode_epochs
    try:
        with Progress(
            config.run.rounds * steps_per_round,
            "PPO rounds",
            quiet=quiet,
            initial=training.rounds_completed * steps_per_round,
        ) as progress:
            log = _TrainingLog(config, directory, training, progress, best_so_far)
            budget = config.run.time_budget_minutes
            try:
                training.run(
                    on_round=log.on_round,
                    on_step=log.on_step,
                    time_budget_seconds=None if budget is None else budget * 60.0,
                    on_decisions=log.on_decisions if config.run.records_decisions(False) else None,
                )
            except NonFiniteError as error:
                directory.event("non_finite_stop", round=log.round, detail=str(error))
                raise
    finally:
        pool.close()
    return training.rounds_completed if training.rounds_completed < config.run.rounds else None


class _TrainingLog:
    """What a PPO run writes while it trains, as the observers of ``PPOTraining.run``: every epoch and decision
    of the round in progress, then each round, its validation when due (keeping ``best.pt`` when the argmax
    policy beats the best so far) and a progress note."""

    def __init__(
        self,
        config: RunConfig,
        directory: RunDirectory,
        training: PPOTraining,
        progress: Progress,
        best_so_far: float | None,
    ) -> None:
        self.config = config
        self.directory = directory
        self.training = training
        self.progress = progress
        #: The round being collected (the one after the last completed round).
        self.round = training.rounds_completed
        #: The best validation score so far (None: no ``best.pt`` yet).
        self.best = best_so_far
        self.epochs = EpochLog(directory)

    def on_step(self, episodes: Sequence[int], results: Sequence[StepResult]) -> None:
        for episode, result in zip(episodes, results, strict=True):
            self.epochs.log(result, round=self.round, env=episode)
        self.progress.advance(len(results), round=self.round)

    def on_decisions(self, decisions: Sequence[ExplainedDecision]) -> None:
        for decision in decisions:
            log_decision(self.directory, decision, round=self.round, env=decision.episode)

    def on_round(self, report: RoundReport) -> None:
        self.round = report.round_index + 1
        _log_round(self.directory, report)
        run = self.config.run
        if validation_due(report.round_index, run.validate_every, run.rounds):
            self._validate(report.round_index)
        metric = short_metric(self.config.preset.metric)
        self.progress.note(
            f"round {report.round_index}: test {metric} {report.mean_test_accuracy:.1f} %, "
            f"val {metric} {report.mean_final_val_accuracy:.1f} %, "
            f"return {report.mean_reward:.3f}, EV {report.update.explained_variance:.2f}"
        )

    def _validate(self, round_index: int) -> None:
        run = self.config.run
        training = self.training
        result = validate(training.bundle, training.pool, run.seed, run.validation_episodes, round_index)
        improved = self.best is None or result.mean_val_accuracy > self.best
        if improved:
            save_best(best_checkpoint_file(self.directory.path), training.checkpoint(), result)
            self.best = result.mean_val_accuracy
        _log_validation(self.directory, result, improved, self.best)
        self.progress.note(
            f"round {round_index} validation (argmax): val {short_metric(self.config.preset.metric)} "
            f"{result.mean_val_accuracy:.1f} %" + (" (new best)" if improved else "")
        )


def _warm_start(config: RunConfig, training: PPOTraining, directory: RunDirectory, quiet: bool) -> None:
    """Clone the configured demonstrator into the new run's policy (``esper.simic.warm_start``) and log it."""
    settings = config.warm_start
    spec = ControllerSpec.parse(str(settings.demonstrator), config.preset.topology)
    demonstrator = build_controller(spec, config.preset, seed=config.run.seed, device=config.run.device)
    with Progress(
        settings.episodes * config.episode_epochs, f"warm start: {spec.label} demonstrates", quiet=quiet
    ) as bar:

        def on_step(episodes: Sequence[int], results: Sequence[StepResult]) -> None:
            bar.advance(len(results))

        report = warm_start(training, demonstrator, settings.episodes, settings.cloning, on_step)
    stats = report.cloning
    directory.event(
        "warm_start",
        demonstrator=spec.label,
        episodes=len(report.episodes),
        demonstrator_mean_val_accuracy=report.mean_final_val_accuracy,
        epochs=stats.epochs,
        steps=stats.steps,
        transitions=stats.transitions,
        initial_action_probability=stats.initial_action_probability,
        final_action_probability=stats.final_action_probability,
        policy_loss=stats.final_policy_loss,
        value_loss=stats.final_value_loss,
        seconds=report.seconds,
    )
    if not quiet:
        note(
            f"warm start: {stats.epochs} epochs, demonstrated actions at p={stats.final_action_probability:.2f} "
            f"(from {stats.initial_action_probability:.2f}), {report.seconds:.0f} s"
        )


def _log_validation(directory: RunDirectory, result: ValidationResult, improved: bool, best: float | None) -> None:
    directory.event(
        "validation",
        round=result.round_index,
        mean_val_accuracy=result.mean_val_accuracy,
        val_accuracies=list(result.val_accuracies),
        mean_params_added=result.mean_params_added,
        best_val_accuracy=best,
        new_best=improved,
        seconds=result.seconds,
    )
    directory.scalars(
        result.round_index,
        {
            "validation/val_accuracy": result.mean_val_accuracy,
            "validation/best_val_accuracy": best,
            "validation/params_added": result.mean_params_added,
        },
    )


def _log_round(directory: RunDirectory, report: RoundReport) -> None:
    update = report.update.flat()
    accuracies = [e.final_val_accuracy for e in report.episodes]
    mean_params = sum(e.params_added for e in report.episodes) / len(report.episodes)
    record = {
        "round": report.round_index,
        "mean_test_accuracy": report.mean_test_accuracy,
        "mean_val_accuracy": report.mean_final_val_accuracy,
        "min_val_accuracy": min(accuracies),
        "max_val_accuracy": max(accuracies),
        "mean_return": report.mean_reward,
        "mean_params_added": mean_params,
        "seconds": report.seconds,
        "update": update,
    }
    directory.event("round", **record)
    if report.update.skipped_steps:
        directory.event(
            "ppo_steps_skipped",
            round=report.round_index,
            skipped_steps=report.update.skipped_steps,
            reason="NaN or infinite loss or gradient norm: no optimizer step",
        )
    for index, episode in enumerate(report.episodes):
        directory.event("episode", round=report.round_index, env=index, **episode.as_dict())
    directory.scalars(
        report.round_index,
        {
            "episode/test_accuracy": report.mean_test_accuracy,
            "episode/val_accuracy": report.mean_final_val_accuracy,
            "episode/return": report.mean_reward,
            "episode/params_added": mean_params,
            **{f"ppo/{key}": value for key, value in update.items()},
        },
    )
