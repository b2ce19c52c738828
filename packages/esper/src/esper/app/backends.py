"""Choose the env backend: worker processes on a multi-core CPU, in-process otherwise (or when asked), Ray actors
when asked (``--backend ray``, an optional extra)."""

from __future__ import annotations

import os

import torch

from esper.app.run_config import RunConfig, RunSettings
from esper.leyline import ConfigError
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.pools import EnvPool, InProcessPool, ProcessPool
from esper.simic.envs.task_data import TaskData
from esper.simic.envs.thread_plan import plan_threads

RAY_MISSING = (
    '--backend ray needs Ray, which is not installed: pip install "esper[ray]" (in a checkout of Esper: '
    "uv sync --group ray)"
)


def require_backend(config: RunConfig) -> None:
    """Refuse a backend that cannot run here (Ray not installed) before a command writes anything."""
    if config.run.backend == "ray":
        try:
            import esper.simic.envs.ray_pool  # noqa: F401
        except ModuleNotFoundError as error:
            if error.name != "ray":
                raise
            raise ConfigError(RAY_MISSING) from None


def make_pool(config: RunConfig, task: TaskData, factory: ModelFactory, n_envs: int) -> EnvPool:
    """``auto`` uses one worker process per core (up to ``n_envs``) for CPU envs, in-process for GPU envs
    (a GPU is shared best from one process). Thread counts follow ``esper.simic.envs.thread_plan``: in-process one
    torch thread unless ``run.threads`` asks for more; with workers, an equal share of the cores each
    (``run.threads`` overrides the share) and one thread in this process for the policy."""
    cores = os.cpu_count() or 1
    backend = config.run.backend
    if backend == "auto":
        backend = "processes" if config.env.device == "cpu" and n_envs > 1 and cores > 1 else "inprocess"
    require_backend(config)
    if backend == "inprocess":
        return InProcessPool(n_envs, task, factory, config.env, threads=config.run.threads)
    if backend == "ray":
        return _ray_pool(config.run, config.env, task, factory, n_envs, cores)
    return ProcessPool(
        n_envs, task, factory, config.env, n_workers=config.run.workers, threads_per_worker=config.run.threads
    )


def _ray_pool(
    run: RunSettings, env: EnvConfig, task: TaskData, factory: ModelFactory, n_envs: int, cores: int
) -> EnvPool:
    """On a Ray started here, the actors follow the worker processes' thread plan over its CPUs (same groups,
    same torch threads, so the same results); on a cluster, one actor with one CPU per env unless told. This
    process keeps one thread for the policy, as with worker processes."""
    from esper.simic.envs.ray_pool import RayPool, RaySettings  # Ray is optional: imported only when asked for

    address = run.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        plan = plan_threads(run.ray_num_cpus or cores, n_envs, processes=True, workers=run.workers, threads=run.threads)
        actors, threads = plan.workers, plan.per_worker
        cpus_per_actor = run.ray_cpus_per_actor or float(threads)
    else:
        actors = min(run.workers or n_envs, n_envs)
        cpus_per_actor = run.ray_cpus_per_actor or 1.0
        threads = run.threads or max(1, int(cpus_per_actor))
    settings = RaySettings(
        address=address,
        num_cpus=run.ray_num_cpus,
        actors=actors,
        cpus_per_actor=cpus_per_actor,
        gpus_per_actor=run.ray_gpus_per_actor,
        threads_per_actor=threads,
    )
    torch.set_num_threads(1)
    return RayPool(n_envs, task, factory, env, settings)
