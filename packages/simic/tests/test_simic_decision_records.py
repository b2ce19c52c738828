"""Decision records: a controller that explains itself is observed after each decision, and observing changes
nothing: the same seeds give the same episodes, and PPO the same updates, with and without records."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from _simic_fixtures import ScriptedController, TinyBundle, stripes_factory, stripes_task

from esper.leyline import ConfigError, InvalidStateMachineError, LifecycleOp, SlotConfig
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.pools import InProcessPool
from esper.simic.episode_loop import ExplainedDecision, run_episodes
from esper.simic.policy_controller import PolicyController
from esper.simic.ppo.updater import PPOConfig
from esper.simic.training import PPORunConfig, PPOTraining

ENV = EnvConfig(max_epochs=4, batch_size=64, host_lr=0.05, seed_lr=0.05)
SLOTS = SlotConfig.after_blocks(2)


def _controller(explain: bool) -> PolicyController:
    bundle = TinyBundle(SLOTS, seed=0)
    return PolicyController(bundle, generator=torch.Generator().manual_seed(5), explain=explain)


def test_the_same_seeds_give_the_same_episodes_with_and_without_records() -> None:
    seeds = [21, 22, 23]
    plain = run_episodes(InProcessPool(2, stripes_task(), stripes_factory(), ENV), _controller(False), seeds)
    decisions: list[ExplainedDecision] = []
    recorded = run_episodes(
        InProcessPool(2, stripes_task(), stripes_factory(), ENV), _controller(True), seeds, None, decisions.extend
    )
    assert recorded == plain
    assert len(decisions) == len(seeds) * ENV.max_epochs
    assert sorted((d.episode, d.epoch) for d in decisions) == [(e, t) for e in range(3) for t in range(4)]
    for decision in decisions:
        explanation = decision.explanation
        probabilities = explanation["op_probabilities"]
        assert isinstance(probabilities, dict) and math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-4)
        heads = explanation["heads"]
        assert isinstance(heads, dict) and heads["op"]["choice"] == decision.action.op.name
        assert math.isclose(heads["op"]["probability"], probabilities[decision.action.op.name], rel_tol=1e-4)
        assert all(0.0 <= h["entropy"] <= 1.0 + 1e-6 for h in heads.values())
        if decision.action.op is LifecycleOp.WAIT:
            assert set(heads) == {"op"}  # WAIT uses no other head
        assert isinstance(explanation["value"], float)


def test_ppo_trains_the_same_with_and_without_records() -> None:
    def training() -> PPOTraining:
        pool = InProcessPool(2, stripes_task(), stripes_factory(), ENV)
        run = PPORunConfig(rounds=2, n_envs=2, episode_epochs=4, seed=7, ppo=PPOConfig(minibatch_envs=1))
        return PPOTraining(TinyBundle(SLOTS, seed=0), pool, run, checkpoint_path=None, run_config={})

    plain, recorded = training(), training()
    plain_reports = plain.run()
    decisions: list[ExplainedDecision] = []
    recorded_reports = recorded.run(on_decisions=decisions.extend)
    assert [r.episodes for r in recorded_reports] == [r.episodes for r in plain_reports]
    assert [r.update.flat() for r in recorded_reports] == [r.update.flat() for r in plain_reports]
    for a, b in zip(plain.bundle.parameters(), recorded.bundle.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(decisions) == 2 * 2 * 4 and {d.episode for d in decisions} == {0, 1}  # env ids within a round


def test_records_need_a_controller_that_explains() -> None:
    pool = InProcessPool(1, stripes_task(), stripes_factory(), ENV)

    def ignore(decisions: Sequence[ExplainedDecision]) -> None:
        raise AssertionError("never called")

    with pytest.raises(ConfigError, match="controller 'scripted' cannot explain its decisions"):
        run_episodes(pool, ScriptedController(), [1], None, ignore)
    quiet = _controller(False)
    quiet.start_episodes(1)
    with pytest.raises(InvalidStateMachineError, match=r"explain\(\) needs a PolicyController\(\.\.\., explain=True\)"):
        quiet.explain(0)
    talking = _controller(True)
    talking.start_episodes(1)
    with pytest.raises(InvalidStateMachineError, match=r"explain\(0\) before the env's first step"):
        talking.explain(0)
