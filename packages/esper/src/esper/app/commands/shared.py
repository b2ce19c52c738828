"""What the train, evaluate, compare and pick-schedule commands share: config resolution, controllers, data
loading, episode runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from esper.app.backends import make_pool, require_backend
from esper.app.console import warn
from esper.app.controllers import ControllerSpec, build_controller
from esper.app.datasets.splits import LoadedTask
from esper.app.decision_events import log_decision
from esper.app.epoch_events import EpochLog
from esper.app.progress import Progress
from esper.app.run_config import BACKEND_KEYS, LOGGING_KEYS, RunConfig, check_device, read_toml, resolve
from esper.app.run_directory import RunDirectory, read_run_config
from esper.leyline import Controller, ExplainingController
from esper.simic.envs.episode_records import EpisodeSummary, StepResult
from esper.simic.envs.task_data import TaskData
from esper.simic.episode_loop import ExplainedDecision, run_episodes


def resolve_config(args: argparse.Namespace, flags: dict[str, object]) -> RunConfig:
    file_values = read_toml(args.config) if getattr(args, "config", None) is not None else {}
    config = resolve(args.task, file_values, flags)
    check_device(config.run.device)
    require_backend(config)
    return config


def backend_flags(args: argparse.Namespace) -> dict[str, object]:
    """The flags every command takes to say where envs run (``BACKEND_KEYS``) and what it logs
    (``LOGGING_KEYS``)."""
    return {name: getattr(args, name) for name in (*BACKEND_KEYS, *LOGGING_KEYS)}


def resolve_evaluation_config(args: argparse.Namespace) -> RunConfig:
    """The config of ``evaluate`` and ``compare`` (they take the same flags)."""
    flags = {name: getattr(args, name) for name in ("episodes", "envs", "seed", "device")}
    return resolve_config(args, {**flags, **backend_flags(args)})


def warn_on_other_episode_lengths(specs: Sequence[ControllerSpec], config: RunConfig) -> None:
    """A policy sees the episode's progress in its observations: on episodes of another length it is evaluated
    outside what it was trained on, which is allowed but must not pass unnoticed."""
    for spec in specs:
        if spec.run_dir is None:
            continue
        env = read_run_config(spec.run_dir).get("env")
        trained = env.get("max_epochs") if isinstance(env, dict) else None
        if trained != config.episode_epochs:
            warn(
                f"the policy in {spec.run_dir} was trained on {trained}-epoch episodes; these episodes have "
                f"{config.episode_epochs} epochs (set [run] epochs = {trained} in a --config file to match)"
            )


def build_controllers(specs: Sequence[ControllerSpec], config: RunConfig) -> list[Controller]:
    """Every controller of ``specs`` for the config's task, seed and device (learned ones keep what they can say of
    each decision when the run records decisions). Called before the output directory exists, so a checkpoint that
    fails to load leaves nothing behind."""
    return [
        build_controller(
            spec,
            config.preset,
            seed=config.run.seed,
            device=config.run.device,
            explain=config.run.records_decisions(True),
        )
        for spec in specs
    ]


def data_record(config: RunConfig, loaded: LoadedTask) -> dict[str, Any]:
    """The task's data as a run records it (config and results): its split (``LoadedTask.record``) and the
    metric its reward and reports use."""
    return {**loaded.record(), "metric": config.preset.metric}


def run_logged_episodes(
    config: RunConfig,
    controller: Controller,
    seeds: Sequence[int],
    directory: RunDirectory,
    task: TaskData,
    *,
    quiet: bool,
    label: str,
) -> list[EpisodeSummary]:
    """Run ``seeds`` with ``controller`` on the config's task, logging every epoch and episode, and every
    decision when the run records them and the controller can explain itself."""
    preset = config.preset
    factory = preset.model_factory(preset.slots, config.episode_epochs, config.gate_config)
    pool = make_pool(config, task, factory, min(config.run.envs, len(seeds)))
    epochs = EpochLog(directory)
    try:
        with Progress(len(seeds) * config.episode_epochs, label, quiet=quiet) as progress:

            def observe(episodes: Sequence[int], results: Sequence[StepResult]) -> None:
                for episode, result in zip(episodes, results, strict=True):
                    epochs.log(result, controller=controller.name, episode=episode)
                accuracy = sum(r.observation.val_accuracy for r in results) / len(results)
                progress.advance(len(results), val_acc=accuracy)

            def record(decisions: Sequence[ExplainedDecision]) -> None:
                for decision in decisions:
                    log_decision(directory, decision, controller=controller.name, episode=decision.episode)

            explains = config.run.records_decisions(True) and isinstance(controller, ExplainingController)
            summaries = run_episodes(pool, controller, seeds, observe, record if explains else None)
    finally:
        pool.close()
    for index, summary in enumerate(summaries):
        directory.event("episode", controller=controller.name, episode=index, **summary.as_dict())
    return summaries
