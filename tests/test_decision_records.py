"""Recording decisions changes nothing a controller does: every kind of controller the app runs plays the same
seeds with and without decision records and gives the same episodes.

The episodes are long enough, and the heuristic's thresholds low enough, that every controller germinates,
advances and ends seeds (a controller that only waits would pass whatever its ``explain`` did); the test checks
that it did. The real bundle's ``get_action`` is also held to drawing nothing for its explanation by
``check_policy_bundle`` (tests/test_typing_conformance.py); this test covers what the controllers keep between
steps (the heuristic's memory, the random baseline's generator, the policy's hidden state and rollout generator).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from esper.kasmina import CNNHostConfig, GateConfig
from esper.leyline import Blueprint, ExplainingController, SlotConfig, Topology
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.model_factories import CNNModelFactory
from esper.simic.envs.pools import InProcessPool
from esper.simic.envs.task_data import TaskData
from esper.simic.episode_loop import ExplainedDecision, run_episodes
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import (
    HeuristicConfig,
    HeuristicController,
    RandomValidController,
    ScheduleController,
    create_policy,
    register_builtin_policies,
)

pytestmark = pytest.mark.slow

SLOTS = SlotConfig.after_blocks(2)
EPOCHS = 16
SEEDS = [31, 32, 33]
ENV = EnvConfig(max_epochs=EPOCHS, batch_size=64, host_lr=0.05, seed_lr=0.05)
#: Germinate on the first flat epoch, and prune quickly, so the heuristic's rules and memory are exercised.
EAGER = HeuristicConfig(
    min_germinate_epoch=1,
    plateau_epochs_to_germinate=1,
    plateau_threshold=5.0,
    stabilization_epochs=1,
    stable_band=(-1.0, 1.0),
    prune_embargo_epochs=1,
    failure_min_epochs_in_stage=1,
    stalled_prune_epochs=1,
)


def stripes_task() -> TaskData:
    """Two classes of noisy 8x8 images (horizontal or vertical stripes), seeded here."""
    generator = torch.Generator().manual_seed(0)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,), generator=generator)
        index = torch.arange(8)
        horizontal = (index.view(1, 8, 1) % 2).expand(n, 8, 8)
        vertical = (index.view(1, 1, 8) % 2).expand(n, 8, 8)
        pictures = torch.where(labels.view(n, 1, 1) == 0, horizontal, vertical).float()
        return (pictures + 0.5 * torch.randn(n, 8, 8, generator=generator)).unsqueeze(1), labels

    train, val, test = images(128), images(64), images(64)
    return TaskData(*train, *val, *test, num_classes=2)


def pool() -> InProcessPool:
    host = CNNHostConfig(in_channels=1, num_classes=2, base_channels=2, kernel_size=3, n_blocks=2, pool_layers=1)
    return InProcessPool(
        len(SEEDS), stripes_task(), CNNModelFactory(host, 8, SLOTS, GateConfig.for_horizon(EPOCHS)), ENV
    )


def policy(explain: bool) -> ExplainingController:
    register_builtin_policies()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        bundle = create_policy("lstm", SLOTS)
    return PolicyController(bundle, generator=torch.Generator().manual_seed(4), explain=explain)


#: Each kind, built to record or not: the rules keep their explanation anyway, a policy computes it only if asked.
CONTROLLERS: dict[str, Callable[[bool], ExplainingController]] = {
    "heuristic": lambda explain: HeuristicController(SLOTS, Topology.CNN, EAGER),
    "random": lambda explain: RandomValidController(SLOTS, seed=2),
    "schedule": lambda explain: ScheduleController(SLOTS, Topology.CNN, Blueprint.CONV_LIGHT),
    "learned": policy,
}


@pytest.mark.parametrize("kind", sorted(CONTROLLERS))
def test_the_same_seeds_give_the_same_episodes_with_and_without_records(kind: str) -> None:
    plain = run_episodes(pool(), CONTROLLERS[kind](False), SEEDS)
    decisions: list[ExplainedDecision] = []
    recorded = run_episodes(pool(), CONTROLLERS[kind](True), SEEDS, None, decisions.extend)
    assert recorded == plain
    assert sorted((d.episode, d.epoch) for d in decisions) == [(e, t) for e in range(len(SEEDS)) for t in range(EPOCHS)]
    for episode in plain:  # every episode grew and moved seeds on: the controller's state between steps was used
        assert episode.germinated >= 2 and episode.op_counts.get("ADVANCE", 0) >= 2, episode.op_counts
