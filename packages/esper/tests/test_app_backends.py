"""The env backend: in-process envs run on one torch thread unless the run asks for more."""

from __future__ import annotations

import torch

from esper.app.backends import make_pool
from esper.app.run_config import resolve
from esper.simic.envs.pools import InProcessPool


def _inprocess_threads(flags: dict[str, object]) -> int:
    config = resolve("digits", {}, {"backend": "inprocess", "envs": 2, **flags})
    preset = config.preset
    previous = torch.get_num_threads()
    torch.set_num_threads(3)  # torch's default would be one per core: the pool must not keep it
    try:
        pool = make_pool(config, preset.load_data(None).task, preset.model_factory(preset.slots, 2), 2)
        assert isinstance(pool, InProcessPool)
        pool.close()
        return torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def test_inprocess_envs_use_one_thread_by_default() -> None:
    assert _inprocess_threads({}) == 1


def test_inprocess_envs_use_the_threads_the_run_asks_for() -> None:
    assert _inprocess_threads({"threads": 2}) == 2
