"""The thread plan: what every process that runs envs may use, so the defaults never oversubscribe the cores."""

from __future__ import annotations

import pytest

from esper.leyline import ConfigError
from esper.simic.envs.thread_plan import ThreadPlan, plan_threads


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("n_envs", [1, 2, 3, 8, 32])
@pytest.mark.parametrize("processes", [False, True])
def test_defaults_never_oversubscribe(cores: int, n_envs: int, processes: bool) -> None:
    plan = plan_threads(cores, n_envs, processes=processes)
    assert plan.main == 1  # the policy's thread: a tiny LSTM gains nothing from more
    # The main process and the workers take turns, so this many threads compute at the same time at most.
    assert max(plan.main, plan.workers * plan.per_worker) <= cores
    if processes:
        assert plan.workers == min(cores, n_envs) and plan.per_worker >= 1
    else:
        assert plan == ThreadPlan(main=1, workers=0, per_worker=0)


@pytest.mark.parametrize(
    ("cores", "n_envs", "workers", "expected"),
    [
        (2, 8, None, ThreadPlan(1, 2, 1)),
        (8, 2, None, ThreadPlan(1, 2, 4)),  # fewer envs than cores: each worker gets a share of the rest
        (8, 3, None, ThreadPlan(1, 3, 2)),
        (16, 8, 4, ThreadPlan(1, 4, 4)),
        (2, 1, None, ThreadPlan(1, 1, 2)),
    ],
)
def test_workers_share_the_cores(cores: int, n_envs: int, workers: int | None, expected: ThreadPlan) -> None:
    assert plan_threads(cores, n_envs, processes=True, workers=workers) == expected


def test_an_explicit_request_is_kept() -> None:
    assert plan_threads(2, 4, processes=False, threads=2) == ThreadPlan(2, 0, 0)
    assert plan_threads(4, 8, processes=True, workers=8, threads=1) == ThreadPlan(1, 8, 1)
    assert plan_threads(4, 8, processes=True, threads=3) == ThreadPlan(1, 4, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cores": 0, "n_envs": 1}, "at least one core"),
        ({"cores": 2, "n_envs": 0}, "one env"),
        ({"cores": 2, "n_envs": 2, "workers": 0}, "workers must be >= 1"),
        ({"cores": 2, "n_envs": 2, "threads": 0}, "threads must be >= 1"),
    ],
)
def test_bad_requests_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_threads(processes=True, **kwargs)
