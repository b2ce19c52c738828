"""The host-training environment: step order, rewards, seed cap, determinism, and the episode summary."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _simic_fixtures import grow_first_slot, stripes_factory, stripes_task

from esper.leyline import (
    MIN_PRUNE_AGE,
    Blueprint,
    ConfigError,
    FactoredAction,
    InvalidStateMachineError,
    LifecycleOp,
    SeedStage,
)
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.rewards import RewardConfig

CONFIG = EnvConfig(max_epochs=12, batch_size=32, host_lr=0.05, seed_lr=0.05)


def make_env(config: EnvConfig = CONFIG) -> HostTrainingEnv:
    return HostTrainingEnv(stripes_task(), stripes_factory(), config)


def test_reset_observes_the_untrained_host() -> None:
    env = make_env()
    obs = env.reset(3)
    assert obs.epoch == 0 and obs.max_epochs == 12
    assert all(slot.stage is SeedStage.DORMANT for slot in obs.slots)
    assert obs.germinations_remaining == CONFIG.max_germinations
    assert obs.last_action is None and obs.loss_history == ()
    assert obs.host_param_count == env.model.host_param_count()


def test_growth_episode_end_to_end() -> None:
    env = make_env()
    obs = env.reset(1)
    results = []
    while not env.done:
        result = env.step(grow_first_slot(obs))
        results.append(result)
        obs = result.observation
    assert len(results) == 12 and results[-1].terminal and not any(r.terminal for r in results[:-1])
    assert obs.epoch == 12
    assert obs.accuracy_history == tuple(r.observation.val_accuracy for r in results[-6:-1])
    summary = env.summary()
    assert summary.germinated == 1 and summary.fossilized == 1 and summary.pruned == 0
    assert summary.final_val_accuracy > summary.initial_val_accuracy + 20  # the seed solves what the host cannot
    assert summary.params_added == env.model.slot("r0c0").require_seed().param_count() > 0
    assert [e.target for e in summary.events][:2] == [SeedStage.GERMINATED, SeedStage.TRAINING]
    assert summary.events[-1].target is SeedStage.FOSSILIZED
    # accuracy rewards telescope: their sum is the accuracy gained over the episode
    gained = sum(r.reward_terms.accuracy_gain for r in results)
    assert gained == pytest.approx((summary.final_val_accuracy - summary.initial_val_accuracy) / 100)
    assert summary.total_reward == pytest.approx(sum(r.reward for r in results))
    # rent is charged only once the seed changes the output (blending onwards), never in TRAINING
    for result in results:
        stage = result.observation.slots[0].stage
        if stage in (SeedStage.GERMINATED, SeedStage.TRAINING):
            assert result.reward_terms.rent == 0
        if stage is SeedStage.FOSSILIZED:
            assert result.reward_terms.rent > 0


def test_invalid_action_changes_nothing_and_is_observed() -> None:
    env = make_env(EnvConfig(max_epochs=4, reward=RewardConfig(invalid_action_penalty=0.25)))
    env.reset(0)
    result = env.step(FactoredAction.fossilize(1))
    assert not result.action_success and "cannot" in result.action_detail
    assert result.observation.last_action is not None
    assert result.observation.last_action.op is LifecycleOp.FOSSILIZE
    assert not result.observation.last_action.success
    assert result.reward_terms.invalid_action == 0.25
    assert all(slot.stage is SeedStage.DORMANT for slot in result.observation.slots)


def test_seed_cap_is_enforced_and_observed() -> None:
    env = make_env(EnvConfig(max_epochs=20, max_germinations=1))
    env.reset(0)
    first = env.step(FactoredAction.germinate(0, Blueprint.NORM))
    assert first.action_success and first.observation.germinations_remaining == 0
    for _ in range(5):
        env.step(FactoredAction.wait())
    env.step(FactoredAction.prune(0))
    for _ in range(6):
        env.step(FactoredAction.wait())
    assert env.model.stages()[1] is SeedStage.DORMANT
    refused = env.step(FactoredAction.germinate(1, Blueprint.NORM))
    assert not refused.action_success and "seed cap" in refused.action_detail
    while not env.done:
        env.step(FactoredAction.wait())
    assert env.summary().pruned == 1


def test_germinating_while_a_seed_develops_is_refused() -> None:
    """Seeds develop one at a time: the environment refuses what the masks forbid, whatever the controller."""
    env = make_env()
    env.reset(0)
    assert env.step(FactoredAction.germinate(0, Blueprint.NORM)).action_success
    refused = env.step(FactoredAction.germinate(1, Blueprint.NORM))
    assert not refused.action_success and "one at a time" in refused.action_detail
    assert refused.observation.slots[1].stage is SeedStage.DORMANT
    assert refused.observation.germinations_remaining == CONFIG.max_germinations - 1


def test_an_instant_prune_is_observed_as_five_embargo_epochs_and_one_reset() -> None:
    env = make_env(EnvConfig(max_epochs=20))
    env.reset(0)
    env.step(FactoredAction.germinate(0, Blueprint.NORM))
    for _ in range(MIN_PRUNE_AGE - 1):
        env.step(FactoredAction.wait())
    observed = [env.step(FactoredAction.prune(0)).observation.slots[0]]
    for _ in range(6):
        observed.append(env.step(FactoredAction.wait()).observation.slots[0])
    assert [(r.stage, r.dwell_remaining) for r in observed] == [
        (SeedStage.EMBARGOED, 5),
        (SeedStage.EMBARGOED, 4),
        (SeedStage.EMBARGOED, 3),
        (SeedStage.EMBARGOED, 2),
        (SeedStage.EMBARGOED, 1),
        (SeedStage.RESETTING, 1),
        (SeedStage.DORMANT, 0),
    ]


def test_same_seed_same_episode() -> None:
    def run(seed: int) -> tuple[tuple[float, ...], list[float]]:
        env = make_env()
        obs = env.reset(seed)
        losses = []
        while not env.done:
            result = env.step(grow_first_slot(obs))
            obs = result.observation
            losses.append(result.train_loss)
        return env.summary().val_accuracy_curve, losses

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_step_before_reset_and_after_the_end_raise() -> None:
    env = make_env(EnvConfig(max_epochs=1))
    with pytest.raises(InvalidStateMachineError, match="reset"):
        env.step(FactoredAction.wait())
    env.reset(0)
    env.step(FactoredAction.wait())
    with pytest.raises(InvalidStateMachineError, match="finished episode"):
        env.step(FactoredAction.wait())


def test_cosine_schedule_reaches_zero_and_config_is_validated() -> None:
    config = EnvConfig(max_epochs=10)
    assert config.lr_factor(0) == 1.0
    assert config.lr_factor(5) == pytest.approx(0.5)
    assert EnvConfig(lr_schedule="constant").lr_factor(7) == 1.0
    with pytest.raises(ConfigError, match="lr_schedule"):
        EnvConfig(lr_schedule="step")
    with pytest.raises(ConfigError, match="momentum"):
        EnvConfig(momentum=1.0)


def test_seed_optimizer_follows_the_seed() -> None:
    env = make_env()
    env.reset(0)
    env.step(FactoredAction.germinate(0, Blueprint.CONV_LIGHT))
    env.step(FactoredAction.advance(0))
    seed_params = list(env.model.seed_parameters("r0c0"))
    before = [p.detach().clone() for p in seed_params]
    env.step(FactoredAction.wait())  # TRAINING: the seed learns through the incubator
    assert any(not torch.equal(a, b) for a, b in zip(before, seed_params, strict=True))


def test_lifecycle_events_and_the_seeds_at_the_end_say_what_each_seed_cost_and_contributed() -> None:
    """What blueprint outcomes are built from: every transition carries the seed's parameters and the
    contribution the controller saw, and the summary lists the seeds the episode ended with."""
    env = make_env()
    obs = env.reset(1)
    contributions = {}
    while not env.done:
        seed = obs.slots[0].seed
        contributions[obs.epoch] = None if seed is None else seed.metrics.contribution
        obs = env.step(grow_first_slot(obs)).observation
    summary = env.summary()
    params = env.model.slot("r0c0").require_seed().param_count()
    assert {(e.blueprint, e.params) for e in summary.events} == {("conv_light", params)}
    germinated, *later = summary.events
    assert germinated.contribution is None  # a new seed has not been measured
    for event in later:  # the contribution measured before the step that moved it
        assert event.contribution == contributions[event.epoch]
    fossilized = summary.events[-1]
    assert fossilized.target is SeedStage.FOSSILIZED and fossilized.contribution is not None
    (kept,) = summary.seeds_at_end
    assert (kept.slot, kept.blueprint, kept.stage, kept.params) == ("r0c0", "conv_light", SeedStage.FOSSILIZED, params)
    assert kept.affects_output and kept.contribution == obs.slots[0].seed.metrics.contribution  # type: ignore[union-attr]
    assert summary.params_added == sum(s.params for s in summary.seeds_at_end if s.affects_output)
    assert type(summary).from_dict(summary.as_dict()) == summary


def test_a_seed_that_never_blends_adds_no_parameters_and_pays_no_rent() -> None:
    env = make_env(EnvConfig(max_epochs=4, batch_size=32, host_lr=0.05, seed_lr=0.05))
    env.reset(2)
    results = [env.step(FactoredAction.germinate(0, Blueprint.CONV_LIGHT))]
    results += [env.step(FactoredAction.advance(0 if i == 0 else 1)) for i in range(3)]
    assert env.model.stages()[0] is SeedStage.TRAINING  # germinated and training, never blended
    assert env.model.slot("r0c0").require_seed().param_count() > 0
    summary = env.summary()
    assert summary.params_added == 0
    assert [(s.stage, s.affects_output) for s in summary.seeds_at_end] == [(SeedStage.TRAINING, False)]
    assert all(r.reward_terms.rent == 0.0 for r in results)


def test_params_added_is_what_the_blended_seed_costs_without_its_unused_gate() -> None:
    env = make_env()
    obs = env.reset(1)
    while not env.done:
        obs = env.step(grow_first_slot(obs)).observation
    seed = env.model.slot("r0c0").require_seed()
    module_params = sum(p.numel() for p in seed.module.parameters())
    assert env.summary().params_added == module_params == 9 * 1 + 2  # conv_light on 1 channel, ADD operator


def _episode(config: EnvConfig) -> tuple[list[float], list[int]]:
    """Validation accuracies of a growth episode and the batch size of every host forward in eval mode."""
    env = make_env(config)
    obs = env.reset(4)
    sizes: list[int] = []
    env.model.host.register_forward_hook(
        lambda module, inputs, _output: None if module.training else sizes.append(inputs[0].shape[0])
    )
    accuracies = []
    while not env.done:
        obs = env.step(grow_first_slot(obs)).observation
        accuracies.append(obs.val_accuracy)
    return accuracies, sizes


def test_counterfactual_batching_changes_the_forwards_not_the_results() -> None:
    fused, fused_sizes = _episode(dataclasses.replace(CONFIG, counterfactual_batching="fused"))
    separate, separate_sizes = _episode(dataclasses.replace(CONFIG, counterfactual_batching="separate"))
    auto, auto_sizes = _episode(CONFIG)
    assert fused == separate == auto
    validation = stripes_task().val_inputs.shape[0]
    # A seed that affects the output adds rows (K = 2): fused stacks them, separate runs one forward per row.
    assert any(size == 2 * validation for size in fused_sizes)
    assert set(separate_sizes) == {validation} and len(separate_sizes) > len(fused_sizes)
    assert auto_sizes == separate_sizes  # auto is separate on the CPU
    with pytest.raises(ConfigError, match="counterfactual_batching must be one of auto, fused, separate"):
        EnvConfig(counterfactual_batching="batched")
