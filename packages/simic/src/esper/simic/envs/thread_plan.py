"""How many torch threads each process that runs environments may use, so the machine is never oversubscribed.

torch's default (one intra-op thread per core in every process) oversubscribes as soon as two processes compute
at once, and an intra-op team whose threads wait for a descheduled partner wastes its slices: an in-process env
at 2 threads on a 2-core machine with two busy neighbours ran 11x slower than at 1 thread (docs/performance.md).
The plan keeps the threads that compute at the same time within the cores: the worker processes step their envs
together while the main process waits for their results, and the main process runs the policy while they wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper.leyline import ConfigError


@dataclass(frozen=True)
class ThreadPlan:
    """``main``: torch threads of the main process (the policy, and the envs when they run in-process);
    ``workers``: env worker processes (0 = in-process); ``per_worker``: torch threads of each worker."""

    main: int
    workers: int
    per_worker: int


def plan_threads(
    cores: int, n_envs: int, *, processes: bool, workers: int | None = None, threads: int | None = None
) -> ThreadPlan:
    """The plan for ``n_envs`` envs on ``cores`` cores, in worker processes or in this process.

    In-process: one thread unless ``threads`` asks for more (tiny hosts gain nothing from intra-op threads, and
    a second thread is what a busy neighbour turns into a stall). Processes: ``workers`` (default one per core)
    capped at ``n_envs``, each with an equal share of the cores (``threads`` overrides the share), one thread in
    the main process. An explicit ``workers`` or ``threads`` is the user's choice and is kept as asked."""
    if cores < 1 or n_envs < 1:
        raise ConfigError(f"need at least one core and one env, got {cores} cores and {n_envs} envs")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if not processes:
        return ThreadPlan(main=threads or 1, workers=0, per_worker=0)
    count = min(workers or cores, n_envs)
    return ThreadPlan(main=1, workers=count, per_worker=threads or max(1, cores // count))
