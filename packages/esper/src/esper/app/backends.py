"""Choose the env backend: worker processes on a multi-core CPU, in-process otherwise (or when asked)."""

from __future__ import annotations

import os

import torch

from esper.app.run_config import RunConfig
from esper.simic.env_pool import EnvPool, InProcessPool, ProcessPool
from esper.simic.model_factories import ModelFactory
from esper.simic.task_data import TaskData


def make_pool(config: RunConfig, task: TaskData, factory: ModelFactory, n_envs: int) -> EnvPool:
    """``auto`` uses one worker process per core (up to ``n_envs``) for CPU envs, in-process for GPU envs
    (a GPU is shared best from one process). The main process then keeps one thread for the policy."""
    cores = os.cpu_count() or 1
    backend = config.run.backend
    if backend == "auto":
        backend = "processes" if config.env.device == "cpu" and n_envs > 1 and cores > 1 else "inprocess"
    if backend == "inprocess":
        return InProcessPool(n_envs, task, factory, config.env)
    workers = min(config.run.workers or cores, n_envs)
    torch.set_num_threads(1)
    return ProcessPool(
        n_envs, task, factory, config.env, n_workers=workers, threads_per_worker=max(1, cores // workers)
    )
