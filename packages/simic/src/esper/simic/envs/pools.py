"""Backends that hold N environments on one machine: in-process, or spread over worker processes.

Both expose the same three calls (``reset``, ``step``, ``summaries``), so the episode loop and every controller
run through one code path whichever backend is used. Worker processes pay off when an env epoch costs more than
the round trip (measured by ``tools/bench``); each worker runs its envs sequentially with ``threads_per_worker``
torch threads. Both pools set the torch threads of this process as ``thread_plan.plan_threads`` says (one unless
asked otherwise), so envs and policy never oversubscribe the cores.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import torch
import torch.multiprocessing as mp

from esper.leyline import ConfigError, EnvObservation, EsperError, FactoredAction
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import EpisodeSummary, StepResult
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.task_data import TaskData
from esper.simic.envs.thread_plan import plan_threads


class EnvPool(Protocol):
    """N environments addressed by index ``0..n_envs-1``."""

    @property
    def n_envs(self) -> int: ...

    def reset(self, env_ids: Sequence[int], seeds: Sequence[int]) -> list[EnvObservation]: ...

    def step(self, env_ids: Sequence[int], actions: Sequence[FactoredAction]) -> list[StepResult]: ...

    def summaries(self, env_ids: Sequence[int]) -> list[EpisodeSummary]: ...

    def close(self) -> None: ...


class InProcessPool:
    """Every env in this process, stepped one after another with ``threads`` torch threads (this process's
    setting, which the policy acting between steps shares; default one). The task is moved to the device once
    and its tensors are shared by every env (they are only read)."""

    def __init__(
        self, n_envs: int, task: TaskData, factory: ModelFactory, config: EnvConfig, threads: int | None = None
    ) -> None:
        if n_envs < 1:
            raise ConfigError(f"need at least one env, got {n_envs}")
        torch.set_num_threads(plan_threads(os.cpu_count() or 1, n_envs, processes=False, threads=threads).main)
        placed = task.to(torch.device(config.device))
        self._envs = [HostTrainingEnv(placed, factory, config) for _ in range(n_envs)]

    @property
    def n_envs(self) -> int:
        return len(self._envs)

    def reset(self, env_ids: Sequence[int], seeds: Sequence[int]) -> list[EnvObservation]:
        return [self._envs[i].reset(seed) for i, seed in zip(env_ids, seeds, strict=True)]

    def step(self, env_ids: Sequence[int], actions: Sequence[FactoredAction]) -> list[StepResult]:
        return [self._envs[i].step(action) for i, action in zip(env_ids, actions, strict=True)]

    def summaries(self, env_ids: Sequence[int]) -> list[EpisodeSummary]:
        return [self._envs[i].summary() for i in env_ids]

    def close(self) -> None:
        self._envs = []


def _worker(
    connection: multiprocessing.connection.Connection,
    n_local: int,
    task: TaskData,
    factory: ModelFactory,
    config: EnvConfig,
    threads: int,
) -> None:
    """Serve commands for ``n_local`` envs until told to close; errors are sent back, never swallowed.

    Ctrl-C and SIGTERM reach every process of the group, but only the parent decides how a run stops, so a
    worker ignores them (it starts with them ignored, see ``ProcessPool``) and ends when told or when the parent
    is gone (its end of the pipe closes)."""
    torch.set_num_threads(threads)
    placed = task.to(torch.device(config.device))  # once per worker, shared by its envs
    envs = [HostTrainingEnv(placed, factory, config) for _ in range(n_local)]
    try:
        while True:
            command, payload = connection.recv()
            if command == "close":
                return
            try:
                if command == "reset":
                    result: Any = [envs[i].reset(seed) for i, seed in payload]
                elif command == "step":
                    result = [envs[i].step(action) for i, action in payload]
                elif command == "summary":
                    result = [envs[i].summary() for i, _ in payload]
                else:
                    raise EsperError(f"unknown worker command {command!r}")
                reply: tuple[str, Any] = ("ok", result)
            except Exception as error:  # the parent re-raises it with the worker's message and traceback
                reply = ("error", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}")
            connection.send(reply)
    except (EOFError, OSError):  # the parent is gone: nothing is left to serve
        return


def group_by_owner(
    owner: Sequence[tuple[int, int]], env_ids: Sequence[int], items: Sequence[Any]
) -> tuple[dict[int, list[tuple[int, Any]]], dict[int, list[int]]]:
    """Split one call over envs into one payload per owner (worker process or Ray actor): ``(local index,
    item)`` pairs, and the positions in ``env_ids`` its results go back to. ``owner[env_id]`` is ``(owner,
    local index)``."""
    payloads: dict[int, list[tuple[int, Any]]] = {}
    positions: dict[int, list[int]] = {}
    for position, (env_id, item) in enumerate(zip(env_ids, items, strict=True)):
        holder, local = owner[env_id]
        payloads.setdefault(holder, []).append((local, item))
        positions.setdefault(holder, []).append(position)
    return payloads, positions


class WorkerError(EsperError):
    """An environment failed inside a worker process, or a worker process died."""


def _death(process: BaseProcess) -> str:
    """Why a worker process ended, as far as its exit status tells."""
    process.join(timeout=5)
    code = process.exitcode
    if code is None:
        return "its pipe closed while it was still running"
    if code < 0:
        name = signal.Signals(-code).name
        hint = ", perhaps by the out-of-memory killer" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {code}"


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while workers are spawned: a spawned process inherits the ignored disposition
    from its very start (before any import), so Ctrl-C never prints a worker traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class ProcessPool:
    """Envs split into contiguous blocks over ``n_workers`` spawned processes (default one per core, at most one
    per env), each with ``threads_per_worker`` torch threads (None: an equal share of the cores); this process
    keeps one thread for the policy, which acts while the workers wait."""

    def __init__(
        self,
        n_envs: int,
        task: TaskData,
        factory: ModelFactory,
        config: EnvConfig,
        n_workers: int | None = None,
        threads_per_worker: int | None = 1,
    ) -> None:
        if n_envs < 1:
            raise ConfigError(f"need at least one env, got {n_envs}")
        plan = plan_threads(os.cpu_count() or 1, n_envs, processes=True, workers=n_workers, threads=threads_per_worker)
        torch.set_num_threads(plan.main)
        workers = plan.workers
        threads_per_worker = plan.per_worker
        self._n_envs = n_envs
        base, extra = divmod(n_envs, workers)
        sizes = [base + (1 if w < extra else 0) for w in range(workers)]
        self._owner: list[tuple[int, int]] = [(w, local) for w, size in enumerate(sizes) for local in range(size)]
        context = mp.get_context("spawn")
        shared = task.shared()
        self._connections: list[multiprocessing.connection.Connection] = []
        self._processes: list[BaseProcess] = []
        with _signals_ignored():
            for size in sizes:
                parent, child = context.Pipe()
                process = context.Process(
                    target=_worker, args=(child, size, shared, factory, config, threads_per_worker), daemon=True
                )
                process.start()
                child.close()
                self._connections.append(parent)
                self._processes.append(process)

    @property
    def n_envs(self) -> int:
        return self._n_envs

    def _scatter(self, command: str, env_ids: Sequence[int], items: Sequence[Any]) -> list[Any]:
        per_worker, positions = group_by_owner(self._owner, env_ids, items)
        for worker, payload in per_worker.items():
            try:
                self._connections[worker].send((command, payload))
            except OSError:  # a broken pipe: the worker is gone
                raise WorkerError(f"env worker {worker} died ({_death(self._processes[worker])})") from None
        results: list[Any] = [None] * len(env_ids)
        errors = []
        for worker in per_worker:
            try:
                status, value = self._connections[worker].recv()
            except (EOFError, OSError):
                raise WorkerError(f"env worker {worker} died ({_death(self._processes[worker])})") from None
            if status != "ok":
                errors.append(f"worker {worker}: {value}")
                continue
            for position, result in zip(positions[worker], value, strict=True):
                results[position] = result
        if errors:
            raise WorkerError("; ".join(errors))
        return results

    def reset(self, env_ids: Sequence[int], seeds: Sequence[int]) -> list[EnvObservation]:
        return self._scatter("reset", env_ids, seeds)

    def step(self, env_ids: Sequence[int], actions: Sequence[FactoredAction]) -> list[StepResult]:
        return self._scatter("step", env_ids, actions)

    def summaries(self, env_ids: Sequence[int]) -> list[EpisodeSummary]:
        return self._scatter("summary", env_ids, [None] * len(env_ids))

    def close(self) -> None:
        """Tell every worker to stop, wait a little, and kill what is left (a worker in the middle of a long step
        when the run is interrupted); the workers ignore SIGTERM, so ``kill`` it is."""
        for connection in self._connections:
            try:
                connection.send(("close", None))
            except OSError:  # the worker is already gone
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for connection in self._connections:
            connection.close()
        self._connections = []
        self._processes = []

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
