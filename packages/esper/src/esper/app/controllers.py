"""Build any controller by name: ``heuristic``, ``random``, ``static``, or a PPO run directory (learned).

A run directory evaluates deterministically (argmax of every head); prefix it with ``stochastic:`` to sample.
A policy runs only on the task it was trained on. This is the composition root's job: tamiyo builds the policy,
simic's ``PolicyController`` runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from esper.app.run_directory import checkpoint_file
from esper.app.tasks import TaskPreset
from esper.leyline import CheckpointError, ConfigError, Controller, EsperError, PolicyBundle, Topology, identical
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import HeuristicController, RandomValidController, StaticController, create_policy_from_config

BUILTIN_CONTROLLERS = ("heuristic", "random", "static")
STOCHASTIC_PREFIX = "stochastic:"


@dataclass(frozen=True)
class ControllerSpec:
    """A parsed ``--controller`` value. ``run_dir`` is set for learned controllers."""

    label: str
    builtin: str | None = None
    run_dir: Path | None = None
    deterministic: bool = True

    @classmethod
    def parse(cls, text: str) -> ControllerSpec:
        text = text.strip()
        if text in BUILTIN_CONTROLLERS:
            return cls(label=text, builtin=text)
        deterministic = not text.startswith(STOCHASTIC_PREFIX)
        path = Path(text.removeprefix(STOCHASTIC_PREFIX))
        if not checkpoint_file(path).is_file():
            raise ConfigError(
                f"unknown controller {text!r}: expected one of {', '.join(BUILTIN_CONTROLLERS)} or a PPO run "
                f"directory with checkpoints/latest.pt"
            )
        return cls(label=_learned_label(path, deterministic, 1), run_dir=path, deterministic=deterministic)


def _learned_label(run_dir: Path, deterministic: bool, depth: int) -> str:
    """``learned-<mode> (<the last depth components of the run directory's path>)``."""
    mode = "deterministic" if deterministic else "stochastic"
    shown = run_dir.name if depth == 1 else str(Path(*run_dir.resolve().parts[-depth:]))
    return f"learned-{mode} ({shown})"


def with_distinct_labels(specs: Sequence[ControllerSpec]) -> list[ControllerSpec]:
    """Run directories with the same name (``a/run`` and ``b/run``) are labelled with as many parent directories as
    it takes to tell them apart; only a controller given twice keeps a clashing label."""
    labelled = list(specs)
    depth = 1
    while True:
        labels = [spec.label for spec in labelled]
        clashing = {label for label in labels if labels.count(label) > 1}
        deepest = max((len(s.run_dir.resolve().parts) for s in labelled if s.run_dir is not None), default=0)
        if not clashing or depth >= deepest:
            return labelled
        depth += 1
        labelled = [
            dataclasses.replace(spec, label=_learned_label(spec.run_dir, spec.deterministic, depth))
            if spec.run_dir is not None and spec.label in clashing
            else spec
            for spec in labelled
        ]


def load_policy(run_dir: Path, device: str, task: TaskPreset) -> PolicyBundle:
    """The trained policy of a run directory, on ``device``. It must have been trained on ``task`` (recorded in
    its checkpoint) and for the task's slots; the observation schema is checked when its weights load."""
    checkpoint = load_checkpoint(checkpoint_file(run_dir))
    trained_on = checkpoint.config.get("task")
    if not isinstance(trained_on, str):
        raise CheckpointError(f"the checkpoint in {run_dir} does not record the task its policy was trained on")
    if trained_on != task.name:
        raise CheckpointError(
            f"the policy in {run_dir} was trained on task {trained_on!r}, not {task.name!r} "
            f"(evaluate it with --task {trained_on})"
        )
    bundle = policy_from_checkpoint(checkpoint, device=device)
    if bundle.slot_config != task.slots:
        raise CheckpointError(
            f"the policy in {run_dir} was trained for slots {list(bundle.slot_config.names())}, "
            f"this task has {list(task.slots.names())}"
        )
    return bundle


def policy_from_checkpoint(
    checkpoint: TrainingCheckpoint, *, device: str, compile_mode: str | None = None
) -> PolicyBundle:
    """The checkpoint's policy rebuilt from its description and loaded with its weights; every problem is a
    ``CheckpointError``. Its weights come from the checkpoint, so the build draws nothing from any generator."""
    with torch.random.fork_rng(devices=[]):
        try:
            bundle = create_policy_from_config(checkpoint.policy_build_config, device=device, compile_mode=compile_mode)
        except EsperError as error:
            raise CheckpointError(f"the checkpoint describes a policy Esper cannot build: {error}") from None
    # A field left out or of another type would be filled in or coerced by the factory, and could build a
    # network of the same shapes that computes something else: the saved description must be the bundle's own.
    if not identical(checkpoint.policy_build_config, bundle.build_config()):
        raise CheckpointError(
            "the checkpoint describes its policy incompletely or with values of the wrong type: "
            f"{checkpoint.policy_build_config!r}"
        )
    bundle.load_state_dict(checkpoint.policy_state)
    return bundle


def build_controller(spec: ControllerSpec, task: TaskPreset, *, seed: int, device: str) -> Controller:
    slots = task.slots
    if spec.builtin == "heuristic":
        return HeuristicController(slots, Topology.CNN)
    if spec.builtin == "random":
        return RandomValidController(slots, Topology.CNN, seed=seed)
    if spec.builtin == "static":
        return StaticController()
    if spec.run_dir is None:
        raise ConfigError(f"controller {spec.label!r} has neither a builtin name nor a run directory")
    bundle = load_policy(spec.run_dir, device, task)
    generator = torch.Generator(device=bundle.device).manual_seed(seed)
    return PolicyController(bundle, deterministic=spec.deterministic, generator=generator, name=spec.label)
