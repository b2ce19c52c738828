"""Benchmark 4, env scaling: env-steps per second of digits envs for 1, 2, 4 and 8 envs with both local
backends, ``InProcessPool`` (every env in this process, one after another) and ``ProcessPool`` (spawned
workers), set up the way ``esper.app.backends.make_pool`` sets them up, and the efficiency against perfect
scaling over the available cores; with the `ray` group installed also ``RayPool`` (actors on a Ray started here,
``benchmarks.ray_backend``) as a ratio to the processes in the same run, and the round trip of one actor call:

    efficiency(N) = steps/s at N / (steps/s of one env x min(N, cores))

One env is what ``make_pool`` runs in-process, with one torch thread (``esper.simic.envs.thread_plan``); it is also
measured with torch's default thread count (one per core), to show what oversubscription costs.

Nothing here gates CI: wall-clock scaling across processes is exactly what a busy neighbour changes. The
efficiency target applies under ``--check`` (a quiet machine).

Every pool lives for the whole benchmark and the (backend, N) cases are interleaved round by round. A round
resets the envs (untimed), then times ``steps`` RL steps of all N envs under the random-valid controller (seeds
germinate, train, blend, get pruned: the mix an early PPO round sees), the controller's time included."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks import ray_backend
from benchmarks.context import BenchContext
from benchmarks.report import BenchmarkResult, Better, Metric, Table
from benchmarks.timing import Case, Work, measure, synchronizer
from benchmarks.workloads import DIGITS, digits_env_config, digits_factory, digits_task
from esper.leyline import EnvObservation
from esper.simic.envs.pools import EnvPool, InProcessPool, ProcessPool
from esper.tamiyo import RandomValidController

EPISODE_SEED = 100
INPROCESS = "inprocess"
PROCESSES = "processes"
RAY = "ray"
#: The issue's goal for Ray: at least this share of the process backend's env-steps/s at 8 envs. Reported, never a
#: CI gate (a ratio of wall-clock rates across two sets of processes is what a busy neighbour moves).
RAY_GOAL = 0.9
#: Round trips timed for Ray's per-call overhead.
RAY_CALLS = 30
#: ``--check``: the backend ``esper train`` picks on a multi-core CPU (processes) keeps at least this share of
#: perfect scaling at 8 envs on a quiet machine (a broken or serialized worker pool falls far below it).
TARGET = 0.6


@dataclass
class _Setting:
    backend: str
    n_envs: int
    pool: EnvPool
    #: torch threads of this process while it steps (make_pool: 1 unless asked otherwise).
    threads: int
    steps_done: list[int]
    #: Ray only: a call to the pool's actors that does no env work (``RayPool.placements``).
    no_op: Callable[[], object] | None = None

    @property
    def name(self) -> str:
        return _name(self.backend, self.n_envs, self.threads)


def _name(backend: str, n_envs: int, threads: int | None = None) -> str:
    return f"{backend}, {n_envs} envs" + ("" if threads is None or backend != INPROCESS else f", {threads} threads")


def _build(ctx: BenchContext, backend: str, n_envs: int, threads: int = 1) -> _Setting:
    task = digits_task()
    config = digits_env_config(ctx.device)
    if backend == INPROCESS:
        pool: EnvPool = InProcessPool(n_envs, task, digits_factory(), config, threads=threads)
        return _Setting(backend, n_envs, pool, threads, [])
    if backend == RAY:
        ray_pool = ray_backend.ray_pool(n_envs, task, digits_factory(), config, os.cpu_count() or 1)
        return _Setting(backend, n_envs, ray_pool, 1, [], no_op=ray_pool.placements)
    pool = ProcessPool(n_envs, task, digits_factory(), config, threads_per_worker=None)  # as make_pool
    return _Setting(backend, n_envs, pool, 1, [])


def _case(setting: _Setting, steps: int) -> Case:
    env_ids = list(range(setting.n_envs))
    seeds = [EPISODE_SEED + env for env in env_ids]

    def prepare() -> Work:
        torch.set_num_threads(setting.threads)
        observations = dict(zip(env_ids, setting.pool.reset(env_ids, seeds), strict=True))
        controller = RandomValidController(DIGITS.slots, seed=EPISODE_SEED)
        controller.start_episodes(setting.n_envs)
        return _stepper(setting, controller, observations, steps)

    return Case(setting.name, prepare)


def _stepper(
    setting: _Setting, controller: RandomValidController, observations: dict[int, EnvObservation], steps: int
) -> Callable[[], None]:
    def work() -> None:
        active = list(observations)
        done = 0
        for _ in range(steps):
            if not active:
                break
            actions = controller.act(active, [observations[env] for env in active])
            results = setting.pool.step(active, actions)
            done += len(active)
            for env, result in zip(active, results, strict=True):
                observations[env] = result.observation
            active = [env for env, result in zip(active, results, strict=True) if not result.terminal]
        setting.steps_done.append(done)

    return work


def run(ctx: BenchContext) -> BenchmarkResult:
    cores = os.cpu_count() or 1
    counts = ctx.sizes.scaling_envs
    inprocess_counts = ctx.sizes.scaling_inprocess_envs
    default = ctx.default_threads
    settings: list[_Setting] = []
    ray_session, ray_missing = ray_backend.start(cores, len(counts))
    round_trip = float("nan")
    try:
        if default != 1:
            settings.append(_build(ctx, INPROCESS, 1, threads=default))
        for n_envs in counts:
            if n_envs in inprocess_counts:
                settings.append(_build(ctx, INPROCESS, n_envs, threads=1))
            if n_envs > 1:
                settings.append(_build(ctx, PROCESSES, n_envs))
            if ray_session is not None:
                settings.append(_build(ctx, RAY, n_envs))
        warmup = 1
        timings = measure(
            [_case(setting, ctx.sizes.scaling_steps) for setting in settings],
            rounds=ctx.sizes.scaling_rounds,
            warmup=warmup,
            synchronize=synchronizer(ctx.device),
        )
        no_ops = [s.no_op for s in settings if s.backend == RAY and s.n_envs == 1 and s.no_op is not None]
        if no_ops:
            round_trip = ray_backend.round_trip_seconds(no_ops[0], RAY_CALLS)
    finally:
        for setting in settings:
            setting.pool.close()
        if ray_session is not None:
            ray_session.close()
        torch.set_num_threads(1)
    rates = {
        setting.name: statistics.median(
            done / seconds
            for done, seconds in zip(setting.steps_done[warmup:], timings.samples[setting.name], strict=True)
        )
        for setting in settings
    }
    single = rates[_name(INPROCESS, 1, 1)]

    def efficiency(rate: float | None, n_envs: int) -> str:
        return "-" if rate is None else f"{rate / (single * min(n_envs, cores)):.2f}"

    rows = []
    for n_envs in counts:
        inprocess = rates.get(_name(INPROCESS, n_envs, 1))
        processes = rates.get(_name(PROCESSES, n_envs))
        ray = rates.get(_name(RAY, n_envs))
        faster = "-"
        if inprocess is not None:
            faster = INPROCESS if processes is None or inprocess >= processes else PROCESSES
        rows.append(
            (
                str(n_envs),
                "-" if inprocess is None else f"{inprocess:.2f}",
                efficiency(inprocess, n_envs),
                "-" if processes is None else f"{processes:.2f}",
                efficiency(processes, n_envs),
                "-" if processes is None or inprocess is None else f"{processes / inprocess:.2f}x",
                faster,
                "-" if ray is None else f"{ray:.2f}",
                "-" if ray is None or processes is None else f"{ray / processes:.2f}x",
            )
        )
    largest = counts[-1]
    processes_largest = rates[_name(PROCESSES, largest)]
    metrics = [
        Metric(
            f"env_scaling.processes_efficiency_{largest}",
            f"env steps/s, processes at {largest} envs / (one env x {min(largest, cores)} cores)",
            processes_largest / (single * min(largest, cores)),
            Better.HIGHER,
            target=TARGET,
        )
    ]
    if largest in inprocess_counts:
        metrics.append(
            Metric(
                f"env_scaling.processes_vs_inprocess_{largest}",
                f"env steps/s at {largest} envs, processes / in-process",
                processes_largest / rates[_name(INPROCESS, largest, 1)],
                Better.HIGHER,
            )
        )
    if ray_session is not None:
        metrics += [
            Metric(
                f"env_scaling.ray_vs_processes_{largest}",
                f"env steps/s at {largest} envs, Ray actors / worker processes (goal >= {RAY_GOAL}, report only)",
                rates[_name(RAY, largest)] / processes_largest,
                Better.HIGHER,
            ),
            Metric(
                "env_scaling.ray_call_vs_env_step",
                "one Ray actor call doing no env work / one env step of one env on Ray (report only)",
                round_trip * rates[_name(RAY, 1)],
                Better.LOWER,
            ),
        ]
    if default != 1:
        metrics.append(
            Metric(
                "env_scaling.one_env_one_thread",
                f"env steps/s of one env in-process, 1 thread (make_pool) / {default} threads (torch's default)",
                rates[_name(INPROCESS, 1, 1)] / rates[_name(INPROCESS, 1, default)],
                Better.HIGHER,
            )
        )
    notes = (
        f"{cores} cores. In-process: this process with 1 torch thread (what `make_pool` picks; one env also with "
        f"torch's default {default}: {rates.get(_name(INPROCESS, 1, default), single):.2f} steps/s); processes: "
        f"min(N, {cores}) spawned workers with max(1, {cores} // workers) threads each and 1 thread here (as "
        f"`make_pool` does). Efficiency is against one env at 1 thread ({single:.2f} steps/s). One env step = one "
        "RL step: the controller acts, every env trains one digits epoch and validates.",
        f"Wall-clock median over {ctx.sizes.scaling_rounds} interleaved rounds of {ctx.sizes.scaling_steps} steps "
        "of every env after a reset (untimed); the random-valid controller runs in this process and is timed too. "
        "Report only in CI (a busy neighbour moves wall-clock scaling); the efficiency target is for --check.",
        (
            f"Ray: one Ray started here for every Ray pool ({cores} logical CPUs per pool, one pool steps at a time), "
            f"each pool set up as `esper --backend ray` sets up a Ray of its own: min(N, {cores}) actors, the "
            "cores shared out as CPUs and torch threads, the task put into the object store once. One actor call "
            f"doing no env work (Ray's own cost per step, median of {RAY_CALLS}): {round_trip * 1e3:.2f} ms. "
            "Report only, in CI and under --check."
            if ray_session is not None
            else f"Ray: not measured ({ray_missing})."
        ),
    )
    return BenchmarkResult(
        name="env_scaling",
        title="4. Env scaling",
        compared="Env-steps/s of the local backends and Ray actors for 1-8 envs; efficiency against perfect scaling.",
        metrics=tuple(metrics),
        tables=(
            Table(
                "Env steps per second",
                (
                    "envs",
                    "in-process steps/s",
                    "in-process efficiency",
                    "processes steps/s",
                    "processes efficiency",
                    "processes / in-process",
                    "faster",
                    "ray steps/s",
                    "ray / processes",
                ),
                tuple(rows),
            ),
        ),
        medians=timings.medians(),
        notes=notes,
    )
