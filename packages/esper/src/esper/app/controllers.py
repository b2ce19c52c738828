"""Build any controller by name: ``heuristic``, ``random``, ``static``, a fixed schedule, a user's own controller,
or a PPO run directory (learned).

- ``schedule:<blueprint>``: tamiyo's fixed schedule with that blueprint (``schedules``, in a list: every blueprint
  of the task's topology); ``best-schedule:<file>``: the schedule ``esper pick-schedule`` chose on training seeds.
- ``module:attribute``: anything importable that, called as ``attribute(slot_config, topology, seed=seed)``,
  returns an object satisfying leyline's ``Controller`` protocol (a class such as tamiyo's
  ``RandomValidController`` qualifies as it is; a factory function is the way to wrap anything else).
- a run directory evaluates deterministically (argmax of every head); prefix it with ``stochastic:`` to sample.
  ``DIR`` (or ``DIR:best``) is the policy of ``checkpoints/best.pt``, the one whose deterministic validation on
  training-range selection seeds scored best: the last update can be a worse policy than an earlier one, and the
  choice looked at no evaluation seed, so the best checkpoint is the run's result. ``DIR:latest`` is the policy
  after the last update (``checkpoints/latest.pt``, the one ``--resume`` continues). A policy runs only on the task
  it was trained on.

This is the composition root's job: tamiyo builds the policy and the schedules, simic's ``PolicyController`` runs
a policy.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from esper.app.run_directory import best_checkpoint_file, checkpoint_file
from esper.app.schedule_choice import BEST_SCHEDULE_PREFIX, read_schedule_choice
from esper.app.tasks import TaskPreset
from esper.leyline import (
    TOPOLOGY_BLUEPRINTS,
    Blueprint,
    CheckpointError,
    ConfigError,
    Controller,
    EsperError,
    PolicyBundle,
    Topology,
    identical,
)
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import (
    SCHEDULE_PREFIX,
    HeuristicController,
    RandomValidController,
    ScheduleController,
    StaticController,
    create_policy_from_config,
)

BUILTIN_CONTROLLERS = ("heuristic", "random", "static")
STOCHASTIC_PREFIX = "stochastic:"
#: In a list of controllers: every fixed schedule of the task's topology.
ALL_SCHEDULES = "schedules"
#: Which checkpoint of a run directory a learned controller uses (``DIR:best``, ``DIR:latest``; ``DIR`` is best).
BEST, LATEST = "best", "latest"
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def schedule_blueprints(topology: Topology) -> tuple[Blueprint, ...]:
    """The blueprints a fixed schedule can use on ``topology`` (every one but NOOP), in head order."""
    return tuple(blueprint for blueprint in TOPOLOGY_BLUEPRINTS[topology] if blueprint is not Blueprint.NOOP)


def _schedule_blueprint(name: str, topology: Topology) -> Blueprint:
    known = {blueprint.registry_name: blueprint for blueprint in schedule_blueprints(topology)}
    if name not in known:
        raise ConfigError(
            f"unknown schedule {SCHEDULE_PREFIX}{name}: the {topology.value} blueprints are {', '.join(known)}"
        )
    return known[name]


@dataclass(frozen=True)
class ControllerSpec:
    """A parsed ``--controller`` value: exactly one of ``builtin``, ``schedule``, ``import_path`` or ``run_dir``
    is set. ``schedule_choice`` names the file a ``best-schedule:`` choice was read from."""

    label: str
    builtin: str | None = None
    run_dir: Path | None = None
    deterministic: bool = True
    schedule: Blueprint | None = None
    schedule_choice: Path | None = None
    import_path: str | None = None
    #: For a run directory: ``best`` or ``latest``.
    checkpoint: str = BEST

    @classmethod
    def parse(cls, text: str, topology: Topology) -> ControllerSpec:
        """One ``--controller`` value; a schedule's blueprint must be one of ``topology`` (the task's)."""
        text = text.strip()
        if text in BUILTIN_CONTROLLERS:
            return cls(label=text, builtin=text)
        if text == ALL_SCHEDULES:
            raise ConfigError(f"{ALL_SCHEDULES!r} stands for several controllers: use it in compare --controllers")
        if text.startswith(SCHEDULE_PREFIX):
            blueprint = _schedule_blueprint(text.removeprefix(SCHEDULE_PREFIX), topology)
            return cls(label=f"{SCHEDULE_PREFIX}{blueprint.registry_name}", schedule=blueprint)
        if text.startswith(BEST_SCHEDULE_PREFIX):
            path = Path(text.removeprefix(BEST_SCHEDULE_PREFIX))
            choice = read_schedule_choice(path)
            label = f"best-schedule ({choice.blueprint.registry_name})"
            return cls(label=label, schedule=choice.blueprint, schedule_choice=choice.path)
        deterministic = not text.startswith(STOCHASTIC_PREFIX)
        path_text, which = _checkpoint_choice(text.removeprefix(STOCHASTIC_PREFIX))
        path = Path(path_text)
        if checkpoint_file(path).is_file():
            if which == BEST and not best_checkpoint_file(path).is_file():
                raise ConfigError(
                    f"{path} has no checkpoints/best.pt yet (no validation has run); use {path}:latest for the "
                    "policy after its last update"
                )
            label = _learned_label(path, deterministic, 1, which)
            return cls(label=label, run_dir=path, deterministic=deterministic, checkpoint=which)
        if deterministic and _IMPORT_PATH.match(text) and not path.exists():
            return cls(label=text, import_path=text)
        raise ConfigError(
            f"unknown controller {text!r}: expected one of {', '.join(BUILTIN_CONTROLLERS)}, "
            f"{SCHEDULE_PREFIX}<blueprint>, {BEST_SCHEDULE_PREFIX}<file>, module:attribute or a PPO run "
            f"directory with checkpoints/latest.pt"
        )


def _checkpoint_choice(text: str) -> tuple[str, str]:
    """``DIR:latest`` -> (DIR, latest); ``DIR:best`` and ``DIR`` -> (DIR, best)."""
    for which in (BEST, LATEST):
        if text.endswith(f":{which}"):
            return text.removesuffix(f":{which}"), which
    return text, BEST


def parse_controllers(text: str, topology: Topology) -> list[ControllerSpec]:
    """A comma-separated list of controllers; ``schedules`` stands for every fixed schedule of ``topology``."""
    specs: list[ControllerSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if item == ALL_SCHEDULES:
            specs.extend(
                ControllerSpec.parse(SCHEDULE_PREFIX + b.registry_name, topology) for b in schedule_blueprints(topology)
            )
        elif item:
            specs.append(ControllerSpec.parse(item, topology))
    return specs


def _learned_label(run_dir: Path, deterministic: bool, depth: int, which: str) -> str:
    """``learned-<mode> (<the last depth components of the run directory's path>[:latest])``."""
    mode = "deterministic" if deterministic else "stochastic"
    shown = run_dir.name if depth == 1 else str(Path(*run_dir.resolve().parts[-depth:]))
    return f"learned-{mode} ({shown}{'' if which == BEST else ':' + which})"


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
            dataclasses.replace(spec, label=_learned_label(spec.run_dir, spec.deterministic, depth, spec.checkpoint))
            if spec.run_dir is not None and spec.label in clashing
            else spec
            for spec in labelled
        ]


def load_policy(run_dir: Path, device: str, task: TaskPreset, *, which: str) -> PolicyBundle:
    """The trained policy of a run directory's ``which`` checkpoint (``best`` or ``latest``), on ``device``. It must
    have been trained on ``task`` (recorded in its checkpoint) and for the task's slots; the observation schema is
    checked when its weights load."""
    checkpoint = load_checkpoint(best_checkpoint_file(run_dir) if which == BEST else checkpoint_file(run_dir))
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


def build_controller(
    spec: ControllerSpec, task: TaskPreset, *, seed: int, device: str, explain: bool = False
) -> Controller:
    """The controller ``spec`` names, for ``task``; ``explain``: a learned one keeps what it can say of each
    decision (the rule-based ones always can)."""
    slots, topology = task.slots, task.topology
    if spec.builtin == "heuristic":
        return HeuristicController(slots, topology)
    if spec.builtin == "random":
        return RandomValidController(slots, topology, seed=seed)
    if spec.builtin == "static":
        return StaticController()
    if spec.schedule is not None:
        if spec.schedule_choice is not None:
            read_schedule_choice(spec.schedule_choice).check_task(task.name)
        return ScheduleController(slots, topology, spec.schedule)
    if spec.import_path is not None:
        return import_controller(spec.import_path, task, seed=seed)
    if spec.run_dir is None:
        raise ConfigError(f"controller {spec.label!r} has neither a builtin name nor a run directory")
    bundle = load_policy(spec.run_dir, device, task, which=spec.checkpoint)
    generator = torch.Generator(device=bundle.device).manual_seed(seed)
    return PolicyController(
        bundle, deterministic=spec.deterministic, generator=generator, name=spec.label, explain=explain
    )


def import_controller(import_path: str, task: TaskPreset, *, seed: int) -> Controller:
    """``module:attribute`` imported and called as ``attribute(slot_config, topology, seed=seed)``; whatever goes
    wrong is one ``ConfigError`` naming the import path."""
    module_name, _, attribute_path = import_path.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"controller {import_path}: cannot import module {module_name!r} ({error})") from None
    for name in attribute_path.split("."):
        if not hasattr(target, name):
            raise ConfigError(f"controller {import_path}: {module_name!r} has no attribute {attribute_path!r}")
        target = getattr(target, name)
    if not callable(target):
        raise ConfigError(f"controller {import_path} is not callable: it must build a controller")
    arguments = (task.slots, task.topology)
    try:
        inspect.signature(target).bind(*arguments, seed=seed)
    except TypeError as error:
        raise ConfigError(
            f"controller {import_path} cannot be called as (slot_config, topology, seed=...): {error}"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): the call itself is the check
        pass
    controller = target(*arguments, seed=seed)
    if not isinstance(controller, Controller):
        raise ConfigError(
            f"controller {import_path} built a {type(controller).__name__}, which does not satisfy leyline's "
            f"Controller protocol (name, start_episodes, act)"
        )
    return controller
