"""The Ray backend in the env-scaling benchmark: one Ray started here for all of its pools, each pool set up as
``esper --backend ray`` sets one up on a Ray of its own (``esper.app.backends``), and the round trip of one actor
call, Ray's own cost per env step."""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.task_data import TaskData

if TYPE_CHECKING:
    from esper.simic.envs.ray_pool import RayPool, RaySession


def start(cores: int, pools: int) -> tuple[RaySession | None, str]:
    """The benchmark's Ray: ``cores`` logical CPUs per pool, so every pool holds actors for all the cores at once,
    as each would on a Ray of its own (the benchmark steps one pool at a time). Without a session, the reason: the
    `ray` group not installed, or Ray not coming up on a machine too busy for its start-up timeout. The Ray
    figures are report only, so the other backends are measured either way."""
    if importlib.util.find_spec("ray") is None:
        return None, "the `ray` group is not installed"
    from esper.simic.envs.ray_pool import RayPoolError, RaySession, RaySettings

    try:
        return RaySession(RaySettings(num_cpus=cores * pools)), ""
    except RayPoolError as error:
        return None, str(error)


def ray_pool(n_envs: int, task: TaskData, factory: ModelFactory, config: EnvConfig, cores: int) -> RayPool:
    """As on a Ray started by the command: the worker processes' groups, one actor per group, the cores shared out
    as CPUs and torch threads."""
    from esper.simic.envs.ray_pool import RayPool, RaySettings

    actors = min(cores, n_envs)
    cpus = max(1, cores // actors)
    settings = RaySettings(actors=actors, cpus_per_actor=float(cpus), threads_per_actor=cpus)
    return RayPool(n_envs, task, factory, config, settings)


def round_trip_seconds(no_op: Callable[[], object], calls: int) -> float:
    """Median seconds of a call that does no env work (``placements`` of a one-actor pool): what Ray adds to every
    env step beyond the step itself and the pickling of its result."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        no_op()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)
