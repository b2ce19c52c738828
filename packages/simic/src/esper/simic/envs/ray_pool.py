"""Environments as Ray actors: the ``EnvPool`` calls of the other backends, on one machine or a whole cluster.

The envs are split into contiguous groups, one Ray actor per group, each with its own resources (CPUs, GPUs,
custom resources) and ``threads_per_actor`` torch threads, as a worker process of ``ProcessPool`` has. The task
data is put into Ray's object store once and every actor maps it from there (one copy per node, not per actor).

Faults: every env's episode is logged on the driver (its seed and the actions taken so far). When an actor dies,
it is replaced and each of its envs replays its episode from the seed, which on CPU reproduces the episode bit
for bit (the replayed rewards are checked against the logged ones), so the round goes on as if nothing happened
and nothing is recomputed beyond that actor's episodes. After ``max_restarts`` replacements in one pool the call
fails with ``RayPoolError`` instead: a run then resumes from its last checkpoint (PPO checkpoints after every
round), losing only the round in progress.

This is the only module of Esper that imports Ray (an optional dependency: ``pip install "esper[ray]"``).
"""

from __future__ import annotations

import os

# Read by Ray when it is imported, so set before the import: no usage statistics leave the machine, and a driver
# started with `uv run` does not make Ray rebuild the uv project for every worker (the nodes use the environment
# they were started in, which must hold Esper).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import RayActorError, RayTaskError

from esper.leyline import ConfigError, EnvObservation, EsperError, FactoredAction
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import EpisodeSummary, StepResult
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.pools import WorkerError, group_by_owner
from esper.simic.envs.task_data import TaskData

#: Seconds to wait for the actors to be placed and built before giving up with an error naming the shortfall.
ACTOR_START_TIMEOUT_SECONDS = 600.0


class RayPoolError(EsperError):
    """The Ray backend cannot go on: no cluster, not enough resources, or actors that keep dying."""


@dataclass(frozen=True)
class RaySettings:
    """Where and how the env actors run.

    ``address`` joins a running cluster (None: the ``RAY_ADDRESS`` variable, else a Ray started here with
    ``num_cpus`` CPUs, all cores when None). ``actors`` is the number of env groups (None: one actor per env).
    Each actor reserves ``cpus_per_actor`` CPUs, ``gpus_per_actor`` GPUs and ``actor_resources`` (custom
    resources, e.g. one declared by the nodes meant to host envs) and runs ``threads_per_actor`` torch threads.
    """

    address: str | None = None
    num_cpus: int | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    actor_resources: Mapping[str, float] = field(default_factory=dict)
    threads_per_actor: int = 1
    max_restarts: int = 3

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"Ray num_cpus must be >= 1, got {self.num_cpus}")
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"Ray actors must be >= 1, got {self.actors}")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ConfigError(
                f"Ray CPUs and GPUs per actor must be >= 0, got {self.cpus_per_actor} and {self.gpus_per_actor}"
            )
        if any(amount <= 0 for amount in self.actor_resources.values()):
            raise ConfigError(f"Ray actor resources must be > 0, got {dict(self.actor_resources)}")
        if self.threads_per_actor < 1:
            raise ConfigError(f"threads per actor must be >= 1, got {self.threads_per_actor}")
        if self.max_restarts < 0:
            raise ConfigError(f"max_restarts must be >= 0, got {self.max_restarts}")


@dataclass(frozen=True)
class _SharedTask:
    """The task as numpy arrays: Ray maps numpy arrays from its object store without copying them."""

    train_inputs: np.ndarray[Any, Any]
    train_targets: np.ndarray[Any, Any]
    val_inputs: np.ndarray[Any, Any]
    val_targets: np.ndarray[Any, Any]
    test_inputs: np.ndarray[Any, Any]
    test_targets: np.ndarray[Any, Any]
    num_classes: int

    @classmethod
    def of(cls, task: TaskData) -> _SharedTask:
        return cls(
            task.train_inputs.cpu().numpy(),
            task.train_targets.cpu().numpy(),
            task.val_inputs.cpu().numpy(),
            task.val_targets.cpu().numpy(),
            task.test_inputs.cpu().numpy(),
            task.test_targets.cpu().numpy(),
            task.num_classes,
        )

    def task(self) -> TaskData:
        # The arrays are read-only views of the object store; torch warns that its tensors over them must not be
        # written to, and the envs only ever index them.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            arrays = (
                self.train_inputs,
                self.train_targets,
                self.val_inputs,
                self.val_targets,
                self.test_inputs,
                self.test_targets,
            )
            train_inputs, train_targets, val_inputs, val_targets, test_inputs, test_targets = (
                torch.from_numpy(a) for a in arrays
            )
        return TaskData(
            train_inputs, train_targets, val_inputs, val_targets, test_inputs, test_targets, self.num_classes
        )


@dataclass(frozen=True)
class ActorPlacement:
    """Where one env actor runs and how many env steps it has served (reported by the actor itself)."""

    env_ids: tuple[int, ...]
    node_id: str
    pid: int
    steps: int


class _EnvGroup:
    """The body of one env actor: ``n_local`` envs stepped one after another."""

    def __init__(self, n_local: int, task: _SharedTask, factory: ModelFactory, config: EnvConfig, threads: int) -> None:
        torch.set_num_threads(threads)
        data = task.task().to(torch.device(config.device))  # once per actor, shared by its envs
        self._envs = [HostTrainingEnv(data, factory, config) for _ in range(n_local)]
        self._steps = 0

    def reset(self, payload: list[tuple[int, int]]) -> list[EnvObservation]:
        return [self._envs[local].reset(seed) for local, seed in payload]

    def step(self, payload: list[tuple[int, FactoredAction]]) -> list[StepResult]:
        self._steps += len(payload)
        return [self._envs[local].step(action) for local, action in payload]

    def summaries(self, payload: list[tuple[int, None]]) -> list[EpisodeSummary]:
        return [self._envs[local].summary() for local, _ in payload]

    def where(self) -> tuple[str, int, int]:
        return ray.get_runtime_context().get_node_id(), os.getpid(), self._steps


@dataclass
class _EpisodeLog:
    """What the driver needs to replay an env's episode on a fresh actor."""

    seed: int
    actions: list[FactoredAction] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)


class RaySession:
    """This process's connection to Ray: joined (a cluster, or the Ray this process already uses) or started here.

    Joining uses ``settings.address``, else the ``RAY_ADDRESS`` variable. Starting here gives a Ray of
    ``settings.num_cpus`` CPUs that listens on loopback only, with no dashboard, which ``close`` stops again. A
    driver already connected (a notebook, a test session, a benchmark holding several pools) keeps its connection.
    """

    def __init__(self, settings: RaySettings) -> None:
        address = settings.address or os.environ.get("RAY_ADDRESS") or None
        if address is not None and settings.num_cpus is not None:
            raise ConfigError(
                f"a CPU count sizes a Ray started on this machine, but the pool joins the cluster at {address}; "
                "a cluster's nodes declare their own CPUs (ray start --num-cpus)"
            )
        self.started = False
        if ray.is_initialized():
            return
        if address is not None:
            try:
                ray.init(address=address, configure_logging=False, log_to_driver=False)
            except ConnectionError as error:
                raise RayPoolError(f"cannot join the Ray cluster at {address}: {error}") from None
            return
        try:
            ray.init(
                address="local",
                num_cpus=settings.num_cpus,
                include_dashboard=False,
                configure_logging=False,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
        except Exception as error:  # Ray raises a bare Exception when its processes do not come up in time
            raise RayPoolError(f"Ray did not start on this machine: {error}") from None
        self.started = True

    def close(self) -> None:
        """Stop Ray if this session started it (a joined cluster keeps running)."""
        if self.started:
            ray.shutdown()
            self.started = False

    def __enter__(self) -> RaySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RayPool:
    """``n_envs`` envs in contiguous groups over Ray actors, addressed by index like the other pools."""

    def __init__(
        self, n_envs: int, task: TaskData, factory: ModelFactory, config: EnvConfig, settings: RaySettings
    ) -> None:
        if n_envs < 1:
            raise ConfigError(f"need at least one env, got {n_envs}")
        actors = min(n_envs, settings.actors if settings.actors is not None else n_envs)
        base, extra = divmod(n_envs, actors)
        sizes = [base + (1 if a < extra else 0) for a in range(actors)]
        self._n_envs = n_envs
        self._settings = settings
        self._sizes = sizes
        self._owner = [(a, local) for a, size in enumerate(sizes) for local in range(size)]
        self._members: list[list[int]] = [[] for _ in sizes]
        for env_id, (actor, _) in enumerate(self._owner):
            self._members[actor].append(env_id)
        self._logs: list[_EpisodeLog | None] = [None] * n_envs
        self._restarts = 0
        self._actors: list[Any] = []
        self._factory = factory
        self._config = config
        self._session = RaySession(settings)
        try:
            self._check_resources(actors)
            self._task_ref = ray.put(_SharedTask.of(task))
            self._actor_class = ray.remote(_EnvGroup)
            self._actors = [self._start_actor(size) for size in sizes]
            self._wait_ready(self._actors)
        except BaseException:
            self.close()
            raise

    @property
    def n_envs(self) -> int:
        return self._n_envs

    @property
    def restarts(self) -> int:
        """Actors replaced so far (each replacement replayed the episodes of the actor it replaced)."""
        return self._restarts

    # ------------------------------------------------------------------------------------------- actors
    def _check_resources(self, actors: int) -> None:
        settings = self._settings
        total = ray.cluster_resources()
        wanted = {"CPU": settings.cpus_per_actor, "GPU": settings.gpus_per_actor, **settings.actor_resources}
        short = [
            f"{name} {actors * amount:g} (the cluster has {total.get(name, 0):g})"
            for name, amount in wanted.items()
            if actors * amount > total.get(name, 0) + 1e-9
        ]
        if short:
            raise RayPoolError(f"{actors} env actors need more than the Ray cluster has: {', '.join(short)}")

    def _start_actor(self, size: int) -> Any:
        settings = self._settings
        options = self._actor_class.options(
            num_cpus=settings.cpus_per_actor,
            num_gpus=settings.gpus_per_actor,
            resources=dict(settings.actor_resources),
            scheduling_strategy="SPREAD",
            max_restarts=0,
        )
        return options.remote(size, self._task_ref, self._factory, self._config, settings.threads_per_actor)

    def _wait_ready(self, actors: Sequence[Any]) -> None:
        refs = [actor.where.remote() for actor in actors]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=ACTOR_START_TIMEOUT_SECONDS)
        if pending:
            raise RayPoolError(
                f"{len(pending)} of {len(refs)} env actors were not placed within "
                f"{ACTOR_START_TIMEOUT_SECONDS:.0f} s: the cluster has no room for them"
            )
        try:
            ray.get(ready)
        except RayActorError as error:
            raise RayPoolError(f"an env actor failed to start: {error}") from None

    def placements(self) -> list[ActorPlacement]:
        """Where each actor runs now, as the actors report it."""
        reports = ray.get([actor.where.remote() for actor in self._actors])
        return [
            ActorPlacement(tuple(self._members[a]), str(node), int(pid), int(steps))
            for a, (node, pid, steps) in enumerate(reports)
        ]

    # ------------------------------------------------------------------------------------------- EnvPool
    def reset(self, env_ids: Sequence[int], seeds: Sequence[int]) -> list[EnvObservation]:
        for env_id in env_ids:
            self._logs[env_id] = None  # a replay during this call has no old episode of these envs to redo
        observations = self._call("reset", env_ids, list(seeds))
        for env_id, seed in zip(env_ids, seeds, strict=True):
            self._logs[env_id] = _EpisodeLog(seed)
        return observations

    def step(self, env_ids: Sequence[int], actions: Sequence[FactoredAction]) -> list[StepResult]:
        results: list[StepResult] = self._call("step", env_ids, list(actions))
        for env_id, action, result in zip(env_ids, actions, results, strict=True):
            log = self._logs[env_id]
            if log is not None:
                log.actions.append(action)
                log.rewards.append(result.reward)
        return results

    def summaries(self, env_ids: Sequence[int]) -> list[EpisodeSummary]:
        return self._call("summaries", env_ids, [None] * len(env_ids))

    def _call(self, method: str, env_ids: Sequence[int], items: Sequence[Any]) -> list[Any]:
        payloads, positions = group_by_owner(self._owner, env_ids, items)
        refs = {actor: getattr(self._actors[actor], method).remote(payload) for actor, payload in payloads.items()}
        results: list[Any] = [None] * len(env_ids)
        errors = []
        for actor, ref in refs.items():
            try:
                values = ray.get(ref)
            except RayActorError:
                values = self._recover(actor, method, payloads[actor])
            except RayTaskError as error:
                errors.append(f"env actor {actor}: {error.cause!r}")
                continue
            for position, value in zip(positions[actor], values, strict=True):
                results[position] = value
        if errors:
            raise WorkerError("; ".join(errors))
        return results

    # ------------------------------------------------------------------------------------------- faults
    def _recover(self, actor: int, method: str, payload: list[tuple[int, Any]]) -> list[Any]:
        """Replace a dead actor, replay its envs' episodes from their seeds, then redo the call that failed."""
        while True:
            self._restarts += 1
            if self._restarts > self._settings.max_restarts:
                envs = self._members[actor]
                raise RayPoolError(
                    f"the env actor of envs {envs[0]}-{envs[-1]} died and the pool already replaced "
                    f"{self._settings.max_restarts} actors; the round is lost, resume the run from its last "
                    "checkpoint"
                )
            ray.kill(self._actors[actor], no_restart=True)
            self._actors[actor] = self._start_actor(self._sizes[actor])
            try:
                self._wait_ready([self._actors[actor]])
                self._replay(actor)
                return list(ray.get(getattr(self._actors[actor], method).remote(payload)))
            except RayActorError:
                continue

    def _replay(self, actor: int) -> None:
        handle = self._actors[actor]
        logged = [(env_id, log) for env_id in self._members[actor] if (log := self._logs[env_id]) is not None]
        if not logged:
            return
        ray.get(handle.reset.remote([(self._owner[env_id][1], log.seed) for env_id, log in logged]))
        for t in range(max(len(log.actions) for _, log in logged)):
            moving = [(env_id, log) for env_id, log in logged if t < len(log.actions)]
            results = ray.get(handle.step.remote([(self._owner[env_id][1], log.actions[t]) for env_id, log in moving]))
            for (env_id, log), result in zip(moving, results, strict=True):
                if result.reward != log.rewards[t]:
                    raise RayPoolError(
                        f"env {env_id}'s episode (seed {log.seed}) replayed on a new actor diverged at step {t} "
                        f"(reward {result.reward!r}, first run {log.rewards[t]!r}); resume the run from its last "
                        "checkpoint"
                    )

    # ------------------------------------------------------------------------------------------- shutdown
    def close(self) -> None:
        """Stop the actors (and the Ray this pool started); safe to call twice, and after a Ctrl-C."""
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        self._session.close()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
