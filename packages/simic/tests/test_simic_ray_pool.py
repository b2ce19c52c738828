"""The Ray pool: same episodes, rewards and policy as the process pool; the task data put once; dead actors
replaced with their episodes replayed (or a clear error once the restarts run out, and a resume loses nothing);
actors stopped on Ctrl-C; envs placed on several nodes. All on the session's three-node cluster (root conftest)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from _simic_fixtures import ScriptedController, TinyBundle, stripes_factory, stripes_task

pytest.importorskip("ray")

import ray
from ray.exceptions import RayActorError

from esper.leyline import ConfigError, EnvObservation, FactoredAction, SlotConfig
from esper.simic.checkpoints import load_checkpoint
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import StepResult
from esper.simic.envs.pools import EnvPool, InProcessPool, ProcessPool, WorkerError
from esper.simic.envs.ray_pool import RayPool, RayPoolError, RaySettings, _SharedTask
from esper.simic.episode_loop import run_episodes
from esper.simic.ppo.updater import PPOConfig
from esper.simic.training import PPORunConfig, PPOTraining, RoundReport

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]

ENV = EnvConfig(max_epochs=3, batch_size=64, host_lr=0.05, seed_lr=0.05)


def _ray_pool(n_envs: int = 2, settings: RaySettings | None = None) -> RayPool:
    return RayPool(n_envs, stripes_task(), stripes_factory(), ENV, settings or RaySettings(actors=2))


def _training(pool: EnvPool, rounds: int = 2, checkpoint: Path | None = None) -> PPOTraining:
    run = PPORunConfig(rounds=rounds, n_envs=2, episode_epochs=ENV.max_epochs, seed=7, ppo=PPOConfig(minibatch_envs=1))
    bundle = TinyBundle(SlotConfig.after_blocks(2), seed=0)
    return PPOTraining(bundle, pool, run, checkpoint_path=checkpoint, run_config={"note": "ray test"})


def _ppo(pool: EnvPool, **kwargs: Any) -> tuple[list[RoundReport], list[float], list[torch.Tensor]]:
    """Train two rounds; the reports, every step's reward in order, and the final policy weights."""
    training = _training(pool, **kwargs)
    rewards: list[float] = []
    reports = training.run(on_step=lambda _, results: rewards.extend(r.reward for r in results))
    return reports, rewards, [p.detach().clone() for p in training.bundle.parameters()]


@pytest.fixture(scope="module")
def process_reference() -> tuple[list[RoundReport], list[float], list[torch.Tensor]]:
    """The same two-round PPO run on the process backend (two workers, one torch thread each)."""
    with ProcessPool(2, stripes_task(), stripes_factory(), ENV, n_workers=2, threads_per_worker=1) as pool:
        return _ppo(pool)


@pytest.fixture(scope="module")
def shared_pool(ray_cluster: Any) -> Iterator[tuple[RayPool, int]]:
    """Two envs on two actors that need the env nodes' resource (so one actor per env node), shared by the tests
    that leave the pool usable (starting actors is slow on 2 busy cores), with the count of task puts made while
    it was built."""
    put = ray.put
    puts = [0]

    def counting_put(value: object, **kwargs: Any) -> Any:
        puts[0] += isinstance(value, _SharedTask)
        return put(value, **kwargs)

    settings = RaySettings(actors=2, cpus_per_actor=1.0, actor_resources={ray_cluster.env_node_resource: 1.0})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray, "put", counting_put)
        pool = _ray_pool(settings=settings)
    with pool:
        yield pool, puts[0]


def test_the_task_data_enters_the_object_store_once(shared_pool: tuple[RayPool, int]) -> None:
    pool, puts = shared_pool
    assert len(pool.placements()) == 2
    assert puts == 1


def test_ppo_on_ray_equals_the_process_backend_bit_for_bit(
    shared_pool: tuple[RayPool, int],
    process_reference: tuple[list[RoundReport], list[float], list[torch.Tensor]],
) -> None:
    pool, _ = shared_pool
    restarts = pool.restarts
    reports, rewards, weights = _ppo(pool)
    assert pool.restarts == restarts
    expected_reports, expected_rewards, expected_weights = process_reference
    assert rewards == expected_rewards and len(rewards) == 2 * 2 * ENV.max_epochs
    assert [r.episodes for r in reports] == [r.episodes for r in expected_reports]
    for ours, theirs in zip(weights, expected_weights, strict=True):
        assert torch.equal(ours, theirs)


def test_envs_run_on_every_node_that_offers_the_env_resource(
    ray_cluster: Any, shared_pool: tuple[RayPool, int]
) -> None:
    pool, _ = shared_pool
    before = [p.steps for p in pool.placements()]
    for round_index in range(2):
        summaries = run_episodes(pool, ScriptedController(), [10 * round_index, 10 * round_index + 1])
        assert all(s.epochs_run == ENV.max_epochs for s in summaries)
    placements = pool.placements()
    nodes = {p.node_id for p in placements}
    assert len(nodes) == 2 and ray_cluster.head_node_id not in nodes
    assert [p.env_ids for p in placements] == [(0,), (1,)]
    assert [p.steps - b for p, b in zip(placements, before, strict=True)] == [2 * ENV.max_epochs] * 2


def test_env_errors_surface_with_their_message(shared_pool: tuple[RayPool, int]) -> None:
    pool, _ = shared_pool
    restarts = pool.restarts
    pool.reset([0], [5])
    with pytest.raises(WorkerError, match="finished episode"):
        for _ in range(ENV.max_epochs + 1):  # one step past the end of the episode fails inside the actor
            pool.step([0], [FactoredAction.wait()])
    assert pool.restarts == restarts


def _killing(pool: RayPool, when: Callable[[int], bool]) -> Callable[[Sequence[int], Sequence[StepResult]], None]:
    """A step observer that SIGKILLs the worker process of the first actor after the step ``when`` accepts."""
    steps = [0]

    def observe(env_ids: Sequence[int], results: Sequence[StepResult]) -> None:
        steps[0] += 1
        if when(steps[0]):
            os.kill(pool.placements()[0].pid, signal.SIGKILL)

    return observe


def test_a_killed_actor_is_replaced_and_its_episodes_replayed_from_their_seeds(
    shared_pool: tuple[RayPool, int],
) -> None:
    pool, _ = shared_pool
    seeds = [3, 4]
    expected = run_episodes(InProcessPool(2, stripes_task(), stripes_factory(), ENV), ScriptedController(), seeds)
    restarts, first = pool.restarts, pool.placements()[0]
    summaries = run_episodes(pool, ScriptedController(), seeds, _killing(pool, lambda step: step == 1))
    assert pool.restarts == restarts + 1
    replacement = pool.placements()[0]
    assert replacement.pid != first.pid and replacement.node_id == first.node_id  # the env node's resource
    assert replacement.steps == ENV.max_epochs  # the replayed first step, then the rest of the episode
    assert summaries == expected


def test_when_restarts_run_out_the_round_fails_clearly_and_a_resume_loses_nothing(
    shared_pool: tuple[RayPool, int],
    process_reference: tuple[list[RoundReport], list[float], list[torch.Tensor]],
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "latest.pt"
    steps_per_round = ENV.max_epochs
    with _ray_pool(settings=RaySettings(actors=1, cpus_per_actor=0.5, max_restarts=0)) as pool:
        training = _training(pool, checkpoint=checkpoint)
        with pytest.raises(RayPoolError, match="resume the run from its last checkpoint"):
            training.run(on_step=_killing(pool, lambda step: step == steps_per_round + 1))  # in the second round
    assert load_checkpoint(checkpoint).rounds_completed == 1
    resumed = _training(shared_pool[0], checkpoint=checkpoint)  # any pool: a resumed run starts its own
    resumed.resume(load_checkpoint(checkpoint))
    reports = resumed.run()
    weights = [p.detach().clone() for p in resumed.bundle.parameters()]
    expected_reports, _, expected_weights = process_reference
    assert [r.round_index for r in reports] == [1]
    assert reports[0].episodes == expected_reports[1].episodes
    for ours, theirs in zip(weights, expected_weights, strict=True):
        assert torch.equal(ours, theirs)


class _Interrupted(ScriptedController):
    """Ctrl-C arrives while the second step's actions are chosen."""

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        if observations[0].epoch == 1:
            raise KeyboardInterrupt
        return super().act(env_ids, observations)


def test_ctrl_c_stops_the_actors(ray_cluster: Any) -> None:
    pool = _ray_pool(settings=RaySettings(actors=1, cpus_per_actor=0.5))
    handles = list(pool._actors)
    with pytest.raises(KeyboardInterrupt), pool:
        run_episodes(pool, _Interrupted(), [1, 2])
    for handle in handles:
        _wait_until_dead(handle)
    pool.close()  # a second close is harmless


def _wait_until_dead(handle: Any, seconds: float = 60.0) -> None:
    """Ray delivers a kill through its control store, so a call sent right after ``ray.kill`` can still be
    answered; the actor must stop answering within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ray.get(handle.where.remote(), timeout=seconds)
        except RayActorError:
            return
        time.sleep(0.2)
    pytest.fail(f"the actor still answers {seconds:.0f} s after the pool closed")


def test_asking_for_more_than_the_cluster_has_is_one_clear_error(ray_cluster: Any) -> None:
    with pytest.raises(
        RayPoolError,
        match=rf"need more than the Ray cluster has: {ray_cluster.env_node_resource} 3 \(the cluster has 2\)",
    ):
        _ray_pool(3, RaySettings(actors=3, cpus_per_actor=0.1, actor_resources={ray_cluster.env_node_resource: 1.0}))
    with pytest.raises(RayPoolError, match=r"GPU 1 \(the cluster has 0\)"):
        _ray_pool(1, RaySettings(actors=1, gpus_per_actor=1.0))


def test_a_cpu_count_with_a_cluster_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    with pytest.raises(ConfigError, match=r"joins the cluster at 127\.0\.0\.1:6379"):
        _ray_pool(1, RaySettings(num_cpus=2))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_cpus": 0}, "num_cpus must be >= 1"),
        ({"actors": 0}, "actors must be >= 1"),
        ({"gpus_per_actor": -1.0}, "must be >= 0"),
        ({"actor_resources": {"x": 0.0}}, "resources must be > 0"),
        ({"threads_per_actor": 0}, "threads per actor"),
        ({"max_restarts": -1}, "max_restarts"),
    ],
)
def test_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RaySettings(**settings)
