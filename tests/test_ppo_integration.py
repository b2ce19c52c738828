"""Simic's PPO with tamiyo's real LSTM bundle, wired the way the app wires it (registry, ``create_policy``).

Two PPO rounds of two envs x four epochs on a tiny synthetic task. Spies on the bundle's ``encode``, on the step
observer and on the training's ``on_update`` hook read what the training loop really stored and used, and check it
against first principles: the buffer's old log-probs equal a fresh re-evaluation, the masks stored are the
canonical masks of the observations the policy saw, irrelevant heads score exactly 0, advantages match a direct
GAE computation, the observation normalizer moves only after the rollout, a run is reproducible from its seed, and
a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from esper.kasmina import CNNHostConfig, GateConfig
from esper.leyline import (
    HEAD_INDEX,
    HEAD_ORDER,
    HEAD_PLACEHOLDERS,
    ActionHead,
    EncodedObservations,
    EnvObservation,
    EvalResult,
    LifecycleOp,
    SlotConfig,
    is_relevant,
)
from esper.simic.checkpoints import load_checkpoint
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import StepResult
from esper.simic.envs.episode_seeds import training_episode_seeds
from esper.simic.envs.model_factories import CNNModelFactory
from esper.simic.envs.pools import InProcessPool
from esper.simic.envs.task_data import TaskData
from esper.simic.ppo.advantages import compute_gae
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.ppo.stats import UpdateStats
from esper.simic.ppo.updater import PPOConfig, PPOUpdater
from esper.simic.training import PPORunConfig, PPOTraining, RoundReport
from esper.tamiyo import LSTMPolicyBundle, create_policy, register_builtin_policies

pytestmark = pytest.mark.slow

SLOTS = SlotConfig.after_blocks(2)
N_ENVS = 2
EPOCHS = 4
RUN_SEED = 3
ENV = EnvConfig(max_epochs=EPOCHS, batch_size=64, host_lr=0.05, seed_lr=0.05)


# --------------------------------------------------------------------------------------------- the tiny task
def bars_task(n_train: int = 192, n_val: int = 96, seed: int = 0) -> TaskData:
    """Two classes of 8x8 images, horizontal bars vs vertical bars at a random offset, plus noise. Both classes
    have the same pixel statistics, so a 1x1-conv host with global pooling cannot beat chance and a 3x3 seed
    can: what the controller grows matters."""
    generator = torch.Generator().manual_seed(seed)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,), generator=generator)
        offset = torch.randint(0, 2, (n, 1, 1), generator=generator)
        index = torch.arange(8)
        horizontal = ((index.view(1, 8, 1) + offset) % 2).expand(n, 8, 8)
        vertical = ((index.view(1, 1, 8) + offset) % 2).expand(n, 8, 8)
        pictures = torch.where(labels.view(n, 1, 1) == 0, horizontal, vertical).float()
        pictures = pictures + 0.25 * torch.randn(n, 8, 8, generator=generator)
        return pictures.unsqueeze(1), labels

    train_inputs, train_targets = images(n_train)
    val_inputs, val_targets = images(n_val)
    test_inputs, test_targets = images(n_val)
    return TaskData(train_inputs, train_targets, val_inputs, val_targets, test_inputs, test_targets, num_classes=2)


def bars_factory() -> CNNModelFactory:
    host = CNNHostConfig(in_channels=1, num_classes=2, base_channels=1, kernel_size=1, n_blocks=2, pool_layers=1)
    return CNNModelFactory(host, 8, SLOTS, GateConfig.for_horizon(EPOCHS))


def lstm_bundle(init_seed: int = 0) -> LSTMPolicyBundle:
    """The real bundle through the registry and the factory, its initialization seeded by the test."""
    register_builtin_policies()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        bundle = create_policy("lstm", SLOTS)
    assert isinstance(bundle, LSTMPolicyBundle)
    return bundle


def training(
    bundle: LSTMPolicyBundle,
    *,
    rounds: int = 2,
    seed: int = RUN_SEED,
    checkpoint: Path | None = None,
    ppo: PPOConfig | None = None,
) -> PPOTraining:
    pool = InProcessPool(N_ENVS, bars_task(), bars_factory(), ENV)
    run = PPORunConfig(rounds, N_ENVS, EPOCHS, seed, ppo or PPOConfig(minibatch_envs=1))
    return PPOTraining(bundle, pool, run, checkpoint_path=checkpoint, run_config={"test": "ppo-integration"})


# -------------------------------------------------------------------------------------------------- spies
def normalizer_state(bundle: LSTMPolicyBundle) -> dict[str, torch.Tensor]:
    normalizer = bundle.network.normalizer
    return {"count": normalizer.count.clone(), "mean": normalizer.mean.clone(), "var": normalizer.var.clone()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@dataclass
class CapturedRound:
    """What one round stored and saw: its buffer, the encoded observations in call order with the env ids
    they were for, and what the update was about to start from."""

    buffer: RolloutBuffer
    encoded: list[tuple[list[int], EncodedObservations]]
    fresh: EvalResult
    normalizer_before_update: dict[str, torch.Tensor]
    return_mean: float
    return_std: float
    stats: UpdateStats | None = None


@dataclass
class Spy:
    """Watches a bundle and a training: records every ``encode`` and every stored step, checks that the
    observation normalizer does not move while a rollout runs, and captures each round's buffer through the
    training's ``on_update`` hook (before the update) and its report (after)."""

    bundle: LSTMPolicyBundle
    run: PPOTraining
    rounds: list[CapturedRound] = field(default_factory=list)
    pending: list[EncodedObservations] = field(default_factory=list)
    stepped: list[list[int]] = field(default_factory=list)
    normalizer_at_round_start: dict[str, torch.Tensor] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        encode = self.bundle.encode
        self.normalizer_at_round_start = normalizer_state(self.bundle)

        def spy_encode(observations: Sequence[EnvObservation]) -> EncodedObservations:
            encoded = encode(observations)
            self.pending.append(encoded)
            return encoded

        monkeypatch.setattr(self.bundle, "encode", spy_encode)

    def on_step(self, env_ids: Sequence[int], results: Sequence[StepResult]) -> None:
        assert_same_state(normalizer_state(self.bundle), self.normalizer_at_round_start)
        self.stepped.append(list(env_ids))

    def on_update(self, buffer: RolloutBuffer) -> None:
        state = normalizer_state(self.bundle)
        assert_same_state(state, self.normalizer_at_round_start)  # not moved by the rollout
        with torch.no_grad():
            fresh = self.bundle.evaluate_actions(buffer.inputs, buffer.actions, buffer.masks, buffer.initial_hidden)
        assert len(self.pending) == len(self.stepped)
        self.rounds.append(
            CapturedRound(
                buffer=buffer,
                encoded=list(zip(self.stepped, self.pending, strict=True)),
                fresh=fresh,
                normalizer_before_update=state,
                return_mean=self.run.updater.returns.mean,
                return_std=self.run.updater.returns.std,
            )
        )
        self.pending, self.stepped = [], []

    def on_round(self, report: RoundReport) -> None:
        self.rounds[-1].stats = report.update
        self.normalizer_at_round_start = normalizer_state(self.bundle)


def run_spied(
    monkeypatch: pytest.MonkeyPatch, run: PPOTraining, bundle: LSTMPolicyBundle
) -> tuple[list[RoundReport], Spy]:
    spy = Spy(bundle, run)
    spy.install(monkeypatch)
    reports = run.run(on_round=spy.on_round, on_step=spy.on_step, on_update=spy.on_update)
    return reports, spy


# ------------------------------------------------------------------------------------------------ helpers
def expected_mask(encoded: EncodedObservations, row: int, head: ActionHead, op: int) -> torch.Tensor:
    """The mask a head must be scored with, from the observation-level masks and the chosen op: the op mask,
    the op-conditioned slot mask, the head's own mask; or, for a head the op ignores, its placeholder alone."""
    masks = encoded.masks
    if head is ActionHead.OP:
        return masks.op[row].cpu()
    full = (masks.slot_by_op[row, op] if head is ActionHead.SLOT else masks.heads[head][row]).cpu()
    if is_relevant(LifecycleOp(op), head):
        return full
    placeholder = int(full.int().argmax()) if head is ActionHead.SLOT else HEAD_PLACEHOLDERS[head]
    return torch.nn.functional.one_hot(torch.tensor(placeholder), full.shape[0]).bool()


def reference_gae(
    rewards: list[float], values: list[float], gamma: float, lam: float
) -> tuple[list[float], list[float]]:
    """Textbook GAE for one episode that ends in a true terminal (no bootstrap after the last step)."""
    advantages = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages, [a + v for a, v in zip(advantages, values, strict=True)]


def flat_equal(a: UpdateStats, b: UpdateStats) -> bool:
    """Update statistics equal key by key (NaN equals NaN: an undefined statistic is undefined in both)."""
    left, right = a.flat(), b.flat()
    if left.keys() != right.keys():
        return False
    for key, x in left.items():
        y = right[key]
        both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        if x != y and not both_nan:
            return False
    return True


def full_state(bundle: LSTMPolicyBundle) -> dict[str, torch.Tensor]:
    """Every weight and normalizer buffer of the network."""
    return {name: tensor.clone() for name, tensor in bundle.network.state_dict().items()}


# -------------------------------------------------------------------------------------------------- tests
def test_two_rounds_store_exactly_what_the_update_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = lstm_bundle()
    run = training(bundle)
    reports, spy = run_spied(monkeypatch, run, bundle)

    assert [r.round_index for r in reports] == [0, 1]
    assert len(spy.rounds) == 2
    for round_index, (report, captured) in enumerate(zip(reports, spy.rounds, strict=True)):
        buffer = captured.buffer
        valid = buffer.valid
        assert [e.seed for e in report.episodes] == training_episode_seeds(RUN_SEED, round_index, N_ENVS)
        assert int(valid.sum()) == sum(e.epochs_run for e in report.episodes) == report.update.transitions
        assert report.update is captured.stats

        # Stored old log-probs and values are what a fresh evaluation gives before any optimizer step ...
        torch.testing.assert_close(captured.fresh.log_probs[valid], buffer.log_probs[valid], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(captured.fresh.values[valid], buffer.values[valid], rtol=1e-5, atol=1e-6)
        # ... so the first minibatch's ratio is 1.
        assert report.update.first_ratio_deviation < 1e-5

        # The relevance the policy stored with each action is leyline's row of the chosen op; heads the op
        # ignores score exactly 0, stored and re-evaluated, and have entropy exactly 0.
        relevant = torch.tensor(
            [
                [[is_relevant(LifecycleOp(op), head) for head in HEAD_ORDER] for op in row]
                for row in buffer.actions[..., HEAD_INDEX[ActionHead.OP]].tolist()
            ]
        )  # [env, time, head]
        assert torch.equal(buffer.relevant[valid], relevant[valid])
        for index, head in enumerate(HEAD_ORDER):
            ignored = valid & ~relevant[..., index]
            assert (buffer.log_probs[..., index][ignored] == 0.0).all(), head
            assert (captured.fresh.log_probs[..., index][ignored] == 0.0).all(), head
            assert (captured.fresh.entropy[..., index][ignored] == 0.0).all(), head
        assert relevant[..., HEAD_INDEX[ActionHead.OP]][valid].all()

        # The masks stored are the canonical masks of what the policy saw, and no masked action is stored.
        step_of_env = [0] * N_ENVS
        for env_ids, encoded in captured.encoded:
            for row, env in enumerate(env_ids):
                t = step_of_env[env]
                step_of_env[env] += 1
                assert buffer.inputs.keys() == encoded.inputs.keys()
                for name, value in encoded.inputs.items():
                    assert torch.equal(buffer.inputs[name][env, t], value[row].cpu()), name
                op = int(buffer.actions[env, t, HEAD_INDEX[ActionHead.OP]])
                assert bool(encoded.masks.op[row, op]), "an op the observation masks was stored"
                for column, head in enumerate(HEAD_ORDER):
                    stored, expected = buffer.masks[env, t, column], expected_mask(encoded, row, head, op)
                    size = expected.shape[0]
                    assert torch.equal(stored[:size], expected) and not stored[size:].any(), (env, t, head)
                    assert bool(stored[buffer.actions[env, t, column]]), (env, t, head)
        for env, length in enumerate(step_of_env):
            assert valid[env, :length].all() and not valid[env, length:].any()

        # Advantages and returns equal a direct GAE computation over each env's episode (values in reward
        # units, as the updater denormalizes them with its return normalizer before the update).
        cfg = run.updater.config
        raw_values = buffer.values * captured.return_std + captured.return_mean
        advantages, returns = compute_gae(
            buffer.rewards, raw_values, buffer.terminals, valid, cfg.gamma, cfg.gae_lambda
        )
        for env in range(N_ENVS):
            length = step_of_env[env]
            assert bool(buffer.terminals[env, length - 1]) and not buffer.terminals[env, : length - 1].any()
            expected_adv, expected_ret = reference_gae(
                buffer.rewards[env, :length].tolist(), raw_values[env, :length].tolist(), cfg.gamma, cfg.gae_lambda
            )
            torch.testing.assert_close(advantages[env, :length], torch.tensor(expected_adv), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(returns[env, :length], torch.tensor(expected_ret), rtol=1e-5, atol=1e-6)
            assert (advantages[env, length:] == 0).all() and (returns[env, length:] == 0).all()

    # The observation normalizer folded each round's features in after that round's update, and only then.
    first, second = spy.rounds
    assert float(first.normalizer_before_update["count"]) == 0.0
    assert float(second.normalizer_before_update["count"]) == float(first.buffer.valid.sum())
    seen = torch.cat([r.buffer.inputs["features"][r.buffer.valid] for r in spy.rounds]).double()
    final = normalizer_state(bundle)
    assert float(final["count"]) == seen.shape[0]
    torch.testing.assert_close(final["mean"].double(), seen.mean(dim=0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(final["var"].double(), seen.var(dim=0, unbiased=False), rtol=1e-4, atol=1e-6)


def test_clipping_engages_after_several_epochs_on_a_fixed_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = lstm_bundle()
    run = training(bundle, rounds=1)
    _, spy = run_spied(monkeypatch, run, bundle)
    buffer = spy.rounds[0].buffer

    # The policy as it was before the round's update (same init seed), driven hard on the same fixed batch.
    fixed = lstm_bundle()
    config = PPOConfig(learning_rate=1e-2, update_epochs=10, minibatch_envs=1, target_kl=None, entropy_coef=0.0)
    stats = PPOUpdater(fixed, config).update(buffer, torch.Generator().manual_seed(0))
    assert stats.first_ratio_deviation < 1e-5  # first minibatch: ratio 1
    assert stats.epochs_completed == 10 and stats.minibatches == 10 * N_ENVS and not stats.early_stopped
    assert stats.clip_fraction > 0.0
    op_clip = stats.heads[ActionHead.OP.value].clip_fraction
    assert op_clip is not None and op_clip > 0.0
    # Heads that never mattered in this batch report no statistics rather than zeros.
    for head in HEAD_ORDER:
        head_stats = stats.heads[head.value]
        if head_stats.relevant_fraction == 0.0:
            assert head_stats.entropy is None and head_stats.clip_fraction is None


def test_same_seed_same_training_through_the_bundle() -> None:
    first = training(lstm_bundle(init_seed=5), seed=11)
    second = training(lstm_bundle(init_seed=5), seed=11)
    first_reports, second_reports = first.run(), second.run()
    for a, b in zip(first_reports, second_reports, strict=True):
        assert flat_equal(a.update, b.update)
        assert [e.val_accuracy_curve for e in a.episodes] == [e.val_accuracy_curve for e in b.episodes]
        assert [e.total_reward for e in a.episodes] == [e.total_reward for e in b.episodes]
    assert isinstance(first.bundle, LSTMPolicyBundle) and isinstance(second.bundle, LSTMPolicyBundle)
    one, other = full_state(first.bundle), full_state(second.bundle)
    assert one.keys() == other.keys()
    assert all(torch.equal(one[name], other[name]) for name in one)

    # Not vacuous: another run seed trains differently from the same initial policy.
    third = training(lstm_bundle(init_seed=5), seed=12, rounds=1)
    (report,) = third.run()
    assert not flat_equal(report.update, first_reports[0].update)


def test_resume_with_the_real_bundle_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = training(lstm_bundle(), rounds=4)
    straight_reports = straight.run()

    checkpoint = tmp_path / "latest.pt"
    interrupted = training(lstm_bundle(), rounds=4, checkpoint=checkpoint)
    early_reports = interrupted.run(stop_after=2)
    assert load_checkpoint(checkpoint).rounds_completed == 2

    # A new process would build an untrained bundle (here deliberately from another init seed) and resume.
    resumed_bundle = lstm_bundle(init_seed=99)
    resumed = training(resumed_bundle, rounds=4, checkpoint=checkpoint)
    resumed.resume(load_checkpoint(checkpoint))
    late_reports = resumed.run()

    reports = early_reports + late_reports
    assert [r.round_index for r in reports] == [0, 1, 2, 3]
    for a, b in zip(straight_reports, reports, strict=True):
        assert flat_equal(a.update, b.update)
        assert [e.seed for e in a.episodes] == [e.seed for e in b.episodes]
        assert [e.val_accuracy_curve for e in a.episodes] == [e.val_accuracy_curve for e in b.episodes]
    assert isinstance(straight.bundle, LSTMPolicyBundle)
    expected, actual = full_state(straight.bundle), full_state(resumed_bundle)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert load_checkpoint(checkpoint).rounds_completed == 4
    assert straight.updater.returns == resumed.updater.returns
