"""The behaviour-cloning warm start: demonstrations stored as the policy would store them, then cloned."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from _simic_fixtures import ScriptedController, TinyBundle, stripes_factory, stripes_task

from esper.leyline import (
    HEAD_ORDER,
    ConfigError,
    EnvObservation,
    FactoredAction,
    InvalidStateMachineError,
    SlotConfig,
    Topology,
    head_sizes,
)
from esper.simic.demonstrations import collect_demonstrations, demonstrated_result
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.pools import InProcessPool
from esper.simic.ppo.cloning import CloningConfig, clone
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.ppo.updater import PPOConfig, PPOUpdater
from esper.simic.training import PPORunConfig, PPOTraining
from esper.simic.warm_start import warm_start

SLOTS = SlotConfig.after_blocks(2)
SIZES = head_sizes(SLOTS, Topology.CNN)
CONFIG = EnvConfig(max_epochs=8, batch_size=32, host_lr=0.05, seed_lr=0.05)


class RecordingController(ScriptedController):
    """The scripted demonstrator, keeping the actions of every episode it played, in the order they started."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[list[FactoredAction]] = []
        self._current: list[list[FactoredAction]] = []

    def start_episodes(self, n_envs: int) -> None:
        super().start_episodes(n_envs)
        self._current = [[] for _ in range(n_envs)]
        self.episodes.extend(self._current)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        actions = super().act(env_ids, observations)
        for env, action in zip(env_ids, actions, strict=True):
            self._current[env].append(action)
        return actions


def _demonstrations(n_seeds: int, n_envs: int) -> tuple[RolloutBuffer, list[list[FactoredAction]]]:
    pool = InProcessPool(n_envs, stripes_task(), stripes_factory(), CONFIG)
    demonstrator = RecordingController()
    buffer, _ = collect_demonstrations(pool, TinyBundle(SLOTS), demonstrator, list(range(n_seeds)), CONFIG.max_epochs)
    pool.close()
    return buffer, demonstrator.episodes


def test_demonstrations_store_the_demonstrators_actions_in_seed_order_under_masks_that_allow_them() -> None:
    # 5 seeds on a pool of 2 envs: three chunks, the last one partial, joined into one buffer of 5 rows.
    buffer, taken = _demonstrations(5, 2)
    assert buffer.n_envs == 5 and len(taken) == 5
    for row, actions in enumerate(taken):
        steps = int(buffer.valid[row].sum())
        assert steps == len(actions) == CONFIG.max_epochs
        for step, action in enumerate(actions):
            indices = dict(zip(HEAD_ORDER, buffer.actions[row, step].tolist(), strict=True))
            assert FactoredAction.from_head_indices(indices, Topology.CNN).canonical() == action.canonical()
            for column, head in enumerate(HEAD_ORDER):
                mask = buffer.masks[row, step, column]
                assert bool(mask[indices[head]]) and not mask[SIZES[head] :].any(), (row, step, head)
    assert any(a.op.name == "GERMINATE" for actions in taken for a in actions)
    assert bool(buffer.terminals[:, -1].all())


def test_a_demonstrated_action_the_masks_forbid_is_refused() -> None:
    bundle = TinyBundle(SLOTS)
    observation = stripes_observation(bundle)
    encoded = bundle.encode([observation])
    encoded.masks.slot_by_op[0, :, 1] = False  # slot 1 is closed to every op
    with pytest.raises(InvalidStateMachineError, match="slot mask"):
        demonstrated_result([FactoredAction.advance(1)], encoded.masks, bundle)


def stripes_observation(bundle: TinyBundle) -> EnvObservation:
    pool = InProcessPool(1, stripes_task(), stripes_factory(), CONFIG)
    observation = pool.reset([0], [0])[0]
    pool.close()
    return observation


def test_cloning_makes_the_demonstrated_actions_likely_and_stops_at_the_target() -> None:
    buffer, _ = _demonstrations(4, 2)
    bundle = TinyBundle(SLOTS, seed=1)
    updater = PPOUpdater(bundle, PPOConfig())
    stats = clone(
        updater,
        buffer,
        CloningConfig(max_epochs=300, minibatch_envs=2, target_probability=0.8),
        torch.Generator().manual_seed(0),
    )
    assert stats.initial_action_probability < 0.2
    assert stats.final_action_probability >= 0.8
    assert stats.epochs < 300 and stats.steps == 2 * stats.epochs
    assert bundle.normalizer_updates == 1
    assert updater.returns.count == stats.transitions == 4 * CONFIG.max_epochs


def test_cloning_the_same_demonstrations_twice_gives_the_same_policy() -> None:
    buffer, _ = _demonstrations(2, 2)
    states = []
    for _ in range(2):
        bundle = TinyBundle(SLOTS, seed=3)
        clone(PPOUpdater(bundle, PPOConfig()), buffer, CloningConfig(max_epochs=5), torch.Generator().manual_seed(7))
        states.append(bundle.state_dict())
    for name in ("lstm", "heads", "value"):
        for key, value in states[0][name].items():
            assert torch.equal(value, states[1][name][key])


def test_a_warm_start_clones_before_the_first_round_and_ppo_continues_from_it() -> None:
    pool = InProcessPool(2, stripes_task(), stripes_factory(), CONFIG)
    bundle = TinyBundle(SLOTS, seed=1)
    training = PPOTraining(
        bundle, pool, PPORunConfig(1, 2, CONFIG.max_epochs, 0, PPOConfig()), checkpoint_path=None, run_config={}
    )
    report = warm_start(training, RecordingController(), 4, CloningConfig(max_epochs=2, minibatch_envs=2))
    assert len(report.episodes) == 4 and report.demonstrator == "scripted"
    assert (
        report.cloning.epochs == 2
        and report.cloning.final_action_probability > report.cloning.initial_action_probability
    )
    optimizer_steps = training.updater.optimizer.state_dict()["state"][0]["step"]
    assert float(optimizer_steps) == report.cloning.steps
    training.run()
    assert training.rounds_completed == 1
    pool.close()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_epochs": 0}, "warm_start.max_epochs"),
        ({"minibatch_envs": True}, "warm_start.minibatch_envs"),
        ({"target_probability": 0.0}, "warm_start.target_probability"),
        ({"target_probability": 1.5}, "warm_start.target_probability"),
    ],
)
def test_cloning_settings_are_checked(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CloningConfig(**values)  # type: ignore[arg-type]
