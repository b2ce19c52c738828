"""Choose the env backend: worker processes on a multi-core CPU, in-process otherwise (or when asked)."""

from __future__ import annotations

import os

from esper.app.run_config import RunConfig
from esper.simic.env_pool import EnvPool, InProcessPool, ProcessPool
from esper.simic.model_factories import ModelFactory
from esper.simic.task_data import TaskData


def make_pool(config: RunConfig, task: TaskData, factory: ModelFactory, n_envs: int) -> EnvPool:
    """``auto`` uses one worker process per core (up to ``n_envs``) for CPU envs, in-process for GPU envs
    (a GPU is shared best from one process). Thread counts follow ``esper.simic.thread_plan``: in-process one
    torch thread unless ``run.threads`` asks for more; with workers, an equal share of the cores each
    (``run.threads`` overrides the share) and one thread in this process for the policy."""
    cores = os.cpu_count() or 1
    backend = config.run.backend
    if backend == "auto":
        backend = "processes" if config.env.device == "cpu" and n_envs > 1 and cores > 1 else "inprocess"
    if backend == "inprocess":
        return InProcessPool(n_envs, task, factory, config.env, threads=config.run.threads)
    return ProcessPool(
        n_envs, task, factory, config.env, n_workers=config.run.workers, threads_per_worker=config.run.threads
    )
