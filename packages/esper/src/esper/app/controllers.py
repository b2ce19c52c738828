"""Build any controller by name: ``heuristic``, ``random``, ``static``, or a PPO run directory (learned).

A run directory evaluates deterministically (argmax of every head); prefix it with ``stochastic:`` to sample.
This is the composition root's job: tamiyo builds the policy, simic's ``PolicyController`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from esper.app.run_directory import checkpoint_file
from esper.leyline import (
    CheckpointError,
    ConfigError,
    Controller,
    EsperError,
    PolicyBundle,
    SlotConfig,
    Topology,
    identical,
)
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
        mode = "deterministic" if deterministic else "stochastic"
        return cls(label=f"learned-{mode} ({path.name})", run_dir=path, deterministic=deterministic)


def load_policy(run_dir: Path, device: str, slots: SlotConfig) -> PolicyBundle:
    """The trained policy of a run directory, on ``device``; it must fit the task's slots."""
    bundle = policy_from_checkpoint(load_checkpoint(checkpoint_file(run_dir)), device=device)
    if bundle.slot_config != slots:
        raise CheckpointError(
            f"the policy in {run_dir} was trained for slots {list(bundle.slot_config.names())}, "
            f"this task has {list(slots.names())}"
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


def build_controller(spec: ControllerSpec, slots: SlotConfig, *, seed: int, device: str) -> Controller:
    if spec.builtin == "heuristic":
        return HeuristicController(slots, Topology.CNN)
    if spec.builtin == "random":
        return RandomValidController(slots, Topology.CNN, seed=seed)
    if spec.builtin == "static":
        return StaticController()
    if spec.run_dir is None:
        raise ConfigError(f"controller {spec.label!r} has neither a builtin name nor a run directory")
    bundle = load_policy(spec.run_dir, device, slots)
    generator = torch.Generator(device=bundle.device).manual_seed(seed)
    return PolicyController(bundle, deterministic=spec.deterministic, generator=generator, name=spec.label)
