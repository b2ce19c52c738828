"""The vectorized loop runs any controller through either backend with identical results."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import torch
from _simic_fixtures import ScriptedController, stripes_factory, stripes_task

from esper.leyline import ConfigError
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import StepResult
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.pools import InProcessPool, ProcessPool, WorkerError
from esper.simic.envs.task_data import TaskData
from esper.simic.episode_loop import run_episodes

CONFIG = EnvConfig(max_epochs=8, batch_size=32, host_lr=0.05, seed_lr=0.05)


def test_batches_of_episodes_in_seed_order() -> None:
    pool = InProcessPool(2, stripes_task(), stripes_factory(), CONFIG)
    controller = ScriptedController()
    steps: list[tuple[int, ...]] = []

    def record(episodes: Sequence[int], results: Sequence[StepResult]) -> None:
        assert len(episodes) == len(results)
        steps.append(tuple(episodes))

    summaries = run_episodes(pool, controller, [11, 12, 13], on_step=record)
    assert [s.seed for s in summaries] == [11, 12, 13]
    assert controller.started == [2, 1]  # two batches: 2 envs, then 1
    # The observer is told which episode (index into the seeds) stepped, not which env played it.
    assert steps == [(0, 1)] * CONFIG.max_epochs + [(2,)] * CONFIG.max_epochs
    assert all(s.epochs_run == CONFIG.max_epochs for s in summaries)
    with pytest.raises(ConfigError, match="at least one episode seed"):
        run_episodes(pool, controller, [])


@pytest.mark.subprocess
def test_process_pool_matches_in_process() -> None:
    seeds = [3, 4, 5]
    local = run_episodes(InProcessPool(3, stripes_task(), stripes_factory(), CONFIG), ScriptedController(), seeds)
    with ProcessPool(3, stripes_task(), stripes_factory(), CONFIG, n_workers=2) as pool:
        remote = run_episodes(pool, ScriptedController(), seeds)
    assert [s.val_accuracy_curve for s in remote] == [s.val_accuracy_curve for s in local]
    assert [s.events for s in remote] == [s.events for s in local]


@pytest.mark.subprocess
def test_worker_errors_surface_with_their_message() -> None:
    from esper.leyline import FactoredAction

    with ProcessPool(1, stripes_task(), stripes_factory(), CONFIG, n_workers=1) as pool:
        with pytest.raises(WorkerError, match=r"worker 0: .*reset"):
            pool.step([0], [FactoredAction.wait()])  # step before reset fails inside the worker


def test_the_in_process_pool_moves_the_task_to_the_device_once_for_all_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    """One copy of the data on the device, shared by every env. Moving is simulated by a copy (as moving to a GPU
    makes new tensors), so every move shows."""
    moves: list[TaskData] = []

    def copy_to(task: TaskData, device: torch.device) -> TaskData:
        tensors = {f.name: getattr(task, f.name) for f in dataclasses.fields(task) if f.name != "num_classes"}
        moved = TaskData(**{name: t.clone() for name, t in tensors.items()}, num_classes=task.num_classes)
        moves.append(moved)
        return moved

    env_tasks: list[TaskData] = []
    build_env = HostTrainingEnv.__init__

    def recording_build(env: HostTrainingEnv, task: TaskData, factory: ModelFactory, config: EnvConfig) -> None:
        env_tasks.append(task)
        build_env(env, task, factory, config)

    monkeypatch.setattr(TaskData, "to", copy_to)
    monkeypatch.setattr(HostTrainingEnv, "__init__", recording_build)
    InProcessPool(3, stripes_task(), stripes_factory(), CONFIG)
    assert len(moves) == 1
    assert len(env_tasks) == 3 and all(task is moves[0] for task in env_tasks)


def test_an_env_refuses_a_task_on_another_device() -> None:
    with pytest.raises(ConfigError, match="the task's tensors are on cpu, the env runs on meta"):
        HostTrainingEnv(stripes_task(), stripes_factory(), dataclasses.replace(CONFIG, device="meta"))
