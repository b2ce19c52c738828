"""PPO on an injected bundle: consistency of stored and re-evaluated log-probs, clipping, KL stop, learning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from _simic_fixtures import TinyBundle, empty_observation

from esper.leyline import (
    HEAD_INDEX,
    HEAD_ORDER,
    ActionHead,
    CheckpointError,
    ConfigError,
    FactoredAction,
    FeatureWidthError,
    InvalidStateMachineError,
    LifecycleOp,
    NonFiniteError,
    SlotConfig,
)
from esper.simic.checkpoints import TrainingCheckpoint, capture_rng_states, save_checkpoint
from esper.simic.policy_controller import PolicyController
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.ppo.updater import MAX_CONSECUTIVE_SKIPPED_STEPS, PPOConfig, PPOUpdater

SLOTS = SlotConfig.after_blocks(2)


def collect(
    bundle: TinyBundle, n_envs: int, steps: int, reward: Callable[[FactoredAction], float], seed: int = 0
) -> RolloutBuffer:
    controller = PolicyController(bundle, generator=torch.Generator().manual_seed(seed))
    buffer = RolloutBuffer(n_envs, steps, bundle.sizes, bundle.initial_hidden(n_envs))
    controller.start_episodes(n_envs)
    ids = list(range(n_envs))
    for t in range(steps):
        step = controller.step(ids, [empty_observation(SLOTS, epoch=t, max_epochs=steps) for _ in ids])
        rewards = [reward(a) for a in step.actions]
        buffer.add(ids, step.encoded.inputs, step.result, rewards, [t == steps - 1] * n_envs)
    return buffer


def germinate_pays(action: FactoredAction) -> float:
    return 1.0 if action.op is LifecycleOp.GERMINATE else 0.0


def test_stored_log_probs_equal_a_fresh_evaluation() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=3, steps=5, reward=germinate_pays)
    evaluated = bundle.evaluate_actions(buffer.inputs, buffer.actions, buffer.masks, buffer.initial_hidden)
    torch.testing.assert_close(evaluated.log_probs, buffer.log_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(evaluated.values, buffer.values, rtol=1e-5, atol=1e-6)


def test_the_buffer_stores_each_field_stacked_and_pads_with_every_action_of_each_head() -> None:
    """A step is one row per field (``[env, time, heads, ...]``, a column per head); a step never written allows
    every action of each head and none of the padding columns past a head's size."""
    bundle = TinyBundle(SLOTS)
    controller = PolicyController(bundle, generator=torch.Generator().manual_seed(0))
    controller.start_episodes(2)
    step = controller.step([0, 1], [empty_observation(SLOTS)] * 2)
    buffer = RolloutBuffer(2, 3, bundle.sizes, bundle.initial_hidden(2))
    buffer.add([1, 0], step.encoded.inputs, step.result, [0.0, 0.0], [False, False])
    heads, width = len(HEAD_ORDER), max(bundle.sizes.values())
    assert buffer.actions.shape == buffer.log_probs.shape == buffer.relevant.shape == (2, 3, heads)
    assert buffer.masks.shape == (2, 3, heads, width)
    for field in ("actions", "log_probs", "masks", "relevant"):
        stored, returned = getattr(buffer, field), getattr(step.result, field)
        assert torch.equal(stored[1, 0], returned[0]) and torch.equal(stored[0, 0], returned[1]), field
    for column, head in enumerate(HEAD_ORDER):
        unwritten = buffer.masks[:, 1:, column]
        assert unwritten[..., : bundle.sizes[head]].all() and not unwritten[..., bundle.sizes[head] :].any(), head


def test_first_minibatch_ratio_is_one_and_clipping_happens_on_a_fixed_batch() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=4, steps=6, reward=germinate_pays)
    config = PPOConfig(learning_rate=3e-2, update_epochs=12, minibatch_envs=2, target_kl=None, entropy_coef=0.0)
    stats = PPOUpdater(bundle, config).update(buffer, torch.Generator().manual_seed(0))
    assert stats.first_ratio_deviation < 1e-5
    assert stats.epochs_completed == 12 and stats.minibatches == 24
    assert stats.clip_fraction > 0
    assert not stats.early_stopped
    assert stats.transitions == 24
    assert stats.heads["op"].relevant_fraction == 1.0
    assert bundle.normalizer_updates == 1


def test_kl_early_stop() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=4, steps=6, reward=germinate_pays)
    config = PPOConfig(learning_rate=0.1, update_epochs=20, minibatch_envs=1, target_kl=1e-4)
    stats = PPOUpdater(bundle, config).update(buffer, torch.Generator().manual_seed(0))
    assert stats.early_stopped
    assert stats.epochs_completed < 20


def test_irrelevant_heads_never_contribute() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=4, steps=6, reward=germinate_pays)
    ops = buffer.actions[..., HEAD_INDEX[ActionHead.OP]]
    non_germinate = ops != LifecycleOp.GERMINATE
    # the tempo head only matters for GERMINATE: its stored log-prob is exactly 0 elsewhere
    assert (buffer.log_probs[..., HEAD_INDEX[ActionHead.TEMPO]][non_germinate] == 0).all()
    stats = PPOUpdater(bundle, PPOConfig()).update(buffer, torch.Generator().manual_seed(0))
    expected = float((ops == LifecycleOp.GERMINATE).float().mean())
    assert stats.heads["tempo"].relevant_fraction == pytest.approx(expected, abs=1e-6)


def test_ppo_learns_a_rewarded_op() -> None:
    bundle = TinyBundle(SLOTS, seed=1)
    updater = PPOUpdater(bundle, PPOConfig(learning_rate=1e-2, update_epochs=4, minibatch_envs=4, entropy_coef=0.0))

    def germinate_rate(seed: int) -> float:
        buffer = collect(bundle, n_envs=8, steps=6, reward=germinate_pays, seed=seed)
        return float((buffer.actions[..., HEAD_INDEX[ActionHead.OP]] == LifecycleOp.GERMINATE).float().mean())

    before = germinate_rate(1000)
    for round_index in range(15):
        buffer = collect(bundle, n_envs=8, steps=6, reward=germinate_pays, seed=round_index)
        updater.update(buffer, torch.Generator().manual_seed(round_index))
    after = germinate_rate(1001)
    assert before < 0.35
    assert after > 0.6


def test_incomplete_buffer_is_refused() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = RolloutBuffer(2, 3, bundle.sizes, bundle.initial_hidden(2))
    with pytest.raises(InvalidStateMachineError, match="did not reach a terminal step"):
        PPOUpdater(bundle, PPOConfig()).update(buffer, torch.Generator())


def test_buffer_refuses_steps_past_an_episode_or_the_round() -> None:
    bundle = TinyBundle(SLOTS)
    controller = PolicyController(bundle)
    controller.start_episodes(1)
    step = controller.step([0], [empty_observation(SLOTS)])
    ended = RolloutBuffer(1, 2, bundle.sizes, bundle.initial_hidden(1))
    ended.add([0], step.encoded.inputs, step.result, [1.0], [True])
    with pytest.raises(InvalidStateMachineError, match="after its episode's terminal step"):
        ended.add([0], step.encoded.inputs, step.result, [1.0], [True])
    full = RolloutBuffer(1, 1, bundle.sizes, bundle.initial_hidden(1))
    full.add([0], step.encoded.inputs, step.result, [0.0], [False])
    with pytest.raises(InvalidStateMachineError, match="more than 1 steps"):
        full.add([0], step.encoded.inputs, step.result, [0.0], [True])


def test_buffer_refuses_inputs_unlike_the_first_steps() -> None:
    bundle = TinyBundle(SLOTS)
    controller = PolicyController(bundle)
    controller.start_episodes(2)
    step = controller.step([0, 1], [empty_observation(SLOTS)] * 2)
    buffer = RolloutBuffer(2, 3, bundle.sizes, bundle.initial_hidden(2))
    buffer.add([0, 1], step.encoded.inputs, step.result, [0.0, 0.0], [False, False])
    renamed = {"progress": step.encoded.inputs["progress"], "stages": step.encoded.inputs["stage"]}
    with pytest.raises(FeatureWidthError, match=r"\['progress', 'stages'\] differ"):
        buffer.add([0, 1], renamed, step.result, [0.0, 0.0], [False, False])
    wider = {**step.encoded.inputs, "progress": torch.zeros(2, 3)}
    with pytest.raises(FeatureWidthError, match="'progress' has rows of shape \\[3\\]"):
        buffer.add([0, 1], wider, step.result, [0.0, 0.0], [False, False])


def test_concatenate_refuses_buffers_made_for_other_head_sizes() -> None:
    """The padded masks of two slot configs can have the same width; their columns still mean other actions."""
    buffers = []
    for slots in (SLOTS, SlotConfig.after_blocks(3)):
        bundle = TinyBundle(slots)
        controller = PolicyController(bundle)
        controller.start_episodes(1)
        step = controller.step([0], [empty_observation(slots)])
        buffer = RolloutBuffer(1, 1, bundle.sizes, bundle.initial_hidden(1))
        buffer.add([0], step.encoded.inputs, step.result, [0.0], [True])
        buffers.append(buffer)
    assert buffers[0].masks.shape == buffers[1].masks.shape
    assert RolloutBuffer.concatenate([buffers[0], buffers[0]]).n_envs == 2
    with pytest.raises(FeatureWidthError, match="differ in length, in the policy's inputs or in the head sizes"):
        RolloutBuffer.concatenate(buffers)


def test_a_policy_with_its_own_inputs_trains_through_the_buffer_and_ppo() -> None:
    """Simic stores whatever named tensors the policy encodes and hands them back unread: the double's inputs
    (``progress``, ``stage``) are not tamiyo's, and they are stored, re-scored and folded in as they came."""
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=3, steps=4, reward=germinate_pays)
    assert set(buffer.inputs) == {"progress", "stage"}
    assert buffer.inputs["progress"].shape == (3, 4, 2) and buffer.inputs["progress"].dtype == torch.float32
    assert buffer.inputs["stage"].shape == (3, 4, SLOTS.num_slots) and buffer.inputs["stage"].dtype == torch.int64
    epochs = torch.arange(4) / 4
    assert torch.equal(buffer.inputs["progress"][:, :, 0], epochs.expand(3, 4))
    before = [p.detach().clone() for p in bundle.parameters()]
    stats = PPOUpdater(bundle, PPOConfig(target_kl=None)).update(buffer, torch.Generator().manual_seed(0))
    assert stats.first_ratio_deviation < 1e-5 and stats.minibatches > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, bundle.parameters(), strict=True))
    assert bundle.normalizer_updates == 1
    torch.testing.assert_close(bundle.mean, 0.5 * buffer.inputs["progress"].reshape(-1, 2).mean(dim=0))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("clip_ratio", 0.0, "clip_ratio must be > 0"),
        ("gamma", 1.5, r"gamma must be in \[0, 1\]"),
        ("target_kl", -1.0, "target_kl"),
        ("lr_schedule", "cosine", "lr_schedule"),
        ("autocast_dtype", "float16", "autocast_dtype"),
    ],
)
def test_config_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PPOConfig(**{field: value})  # type: ignore[arg-type]


def test_linear_schedule_decays_and_needs_rounds() -> None:
    with pytest.raises(ConfigError, match="total_rounds"):
        PPOUpdater(TinyBundle(SLOTS), PPOConfig(lr_schedule="linear"))
    bundle = TinyBundle(SLOTS)
    updater = PPOUpdater(bundle, PPOConfig(lr_schedule="linear", learning_rate=1e-3), total_rounds=4)
    first = updater.update(collect(bundle, 2, 3, germinate_pays), torch.Generator()).learning_rate
    second = updater.update(collect(bundle, 2, 3, germinate_pays), torch.Generator()).learning_rate
    assert first == pytest.approx(1e-3) and second == pytest.approx(0.75e-3)


def test_bf16_autocast_update_runs_and_stays_finite() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=2, steps=4, reward=germinate_pays)
    stats = PPOUpdater(bundle, PPOConfig(autocast_dtype="bfloat16")).update(buffer, torch.Generator())
    assert torch.isfinite(torch.tensor(stats.policy_loss))
    assert stats.first_ratio_deviation < 0.05  # bf16 matmuls: the ratio is 1 up to bf16 rounding


def test_head_health_counts_only_steps_with_a_choice() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=8, steps=8, reward=germinate_pays)
    # Pretend the tempo head only ever had one allowed action (the one taken): it mattered but had no choice.
    tempo = HEAD_INDEX[ActionHead.TEMPO]
    buffer.masks[..., tempo, :] = torch.nn.functional.one_hot(buffer.actions[..., tempo], buffer.masks.shape[-1])
    buffer.log_probs[..., tempo] = 0.0  # what sampling from it would store
    stats = PPOUpdater(bundle, PPOConfig()).update(buffer, torch.Generator().manual_seed(0))
    germinations = float((buffer.actions[..., HEAD_INDEX[ActionHead.OP]] == LifecycleOp.GERMINATE).float().mean())
    assert germinations > 0
    assert stats.heads["tempo"].relevant_fraction == pytest.approx(germinations, abs=1e-6)
    assert stats.heads["tempo"].choice_fraction == 0.0
    assert stats.heads["tempo"].entropy is None
    assert stats.heads["op"].choice_fraction == 1.0  # every op is allowed in the test bundle
    assert stats.heads["op"].entropy is not None and 0.0 < stats.heads["op"].entropy <= 1.0


def _weights(bundle: TinyBundle) -> list[torch.Tensor]:
    return [p.detach().clone() for p in bundle.parameters()]


def test_a_non_finite_minibatch_is_skipped_without_touching_a_weight() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=4, steps=5, reward=germinate_pays)
    buffer.log_probs[0, 2, HEAD_INDEX[ActionHead.OP]] = float("nan")  # one env's minibatch gets a NaN loss
    config = PPOConfig(update_epochs=1, minibatch_envs=1, target_kl=None)
    updater = PPOUpdater(bundle, config)
    stats = updater.update(buffer, torch.Generator().manual_seed(0))
    assert stats.skipped_steps == 1 and stats.minibatches == 3
    assert updater.consecutive_skips == 0  # a later step succeeded
    assert all(bool(torch.isfinite(p).all()) for p in bundle.parameters())


def test_non_finite_steps_in_a_row_stop_training_before_any_weight_changes() -> None:
    bundle = TinyBundle(SLOTS)
    buffer = collect(bundle, n_envs=4, steps=5, reward=germinate_pays)
    buffer.log_probs[:, 0, HEAD_INDEX[ActionHead.OP]] = float("nan")  # every minibatch
    before = _weights(bundle)
    updater = PPOUpdater(bundle, PPOConfig(update_epochs=1, minibatch_envs=1, target_kl=None))
    with pytest.raises(NonFiniteError, match=f"{MAX_CONSECUTIVE_SKIPPED_STEPS} PPO steps in a row"):
        updater.update(buffer, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(bundle), strict=True))


def test_a_non_finite_policy_is_never_saved(tmp_path: Path) -> None:
    bundle = TinyBundle(SLOTS)
    updater = PPOUpdater(bundle, PPOConfig())
    path = tmp_path / "latest.pt"

    def checkpoint() -> TrainingCheckpoint:
        return TrainingCheckpoint(1, bundle.state_dict(), {}, updater.state_dict(), capture_rng_states(), {})

    save_checkpoint(path, checkpoint())
    written = path.read_bytes()
    with torch.no_grad():
        next(iter(bundle.parameters()))[0].fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN or infinite values in"):
        save_checkpoint(path, checkpoint())
    assert path.read_bytes() == written
