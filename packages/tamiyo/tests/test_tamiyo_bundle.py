"""The policy bundle with a live network: rollout/update seam parity, canonical heads, gradient flow,
the joint factored distribution, input validation and the observation normalizer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product
from unittest import mock

import numpy as np
import pytest
import torch
from _tamiyo_fixtures import SLOTS, observation, observations, perturbed_bundle, seed, slot, varied_observations
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    HEAD_INDEX,
    HEAD_ORDER,
    HEAD_PLACEHOLDERS,
    ActionHead,
    ActionMasks,
    ActionResult,
    AlphaSnapshot,
    ConfigError,
    EncodedObservations,
    EnvObservation,
    FeatureWidthError,
    InvalidStateMachineError,
    LifecycleOp,
    MaskShapeError,
    NonFiniteError,
    SeedStage,
    is_relevant,
    mask_width,
)
from esper.tamiyo import LSTMPolicyBundle
from esper.tamiyo.policy.canonical import canonical_masks
from esper.tamiyo.policy.lstm import LSTMLayer, StepwiseLSTM


@dataclass
class Rollout:
    inputs: dict[str, torch.Tensor]  # [env, time, ...]: features [.., feature_dim], blueprint_indices [.., slots]
    actions: torch.Tensor  # [env, time, H]
    masks: torch.Tensor  # [env, time, H, width]
    log_probs: torch.Tensor  # [env, time, H]
    relevant: torch.Tensor  # [env, time, H] bool
    values: torch.Tensor  # [env, time]
    initial_hidden: tuple[torch.Tensor, torch.Tensor]


def _rollout(bundle: LSTMPolicyBundle, steps: int = 5, deterministic: bool = False) -> Rollout:
    generator = torch.Generator().manual_seed(3)
    hidden = bundle.initial_hidden(4)
    initial = (hidden[0].clone(), hidden[1].clone())
    encoded_steps: list[EncodedObservations] = []
    results: list[ActionResult] = []
    for step in range(steps):
        encoded_steps.append(bundle.encode(varied_observations(epoch=5 + step)))
        results.append(bundle.get_action(encoded_steps[-1], hidden, deterministic, generator))
        hidden = results[-1].hidden

    def over_time(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(tensors, dim=1)

    return Rollout(
        inputs={name: over_time([e.inputs[name] for e in encoded_steps]) for name in encoded_steps[0].inputs},
        actions=over_time([r.actions for r in results]),
        masks=over_time([r.masks for r in results]),
        log_probs=over_time([r.log_probs for r in results]),
        relevant=over_time([r.relevant for r in results]),
        values=over_time([r.values for r in results]),
        initial_hidden=initial,
    )


@pytest.mark.parametrize("layers", [1, 2])
def test_get_action_and_evaluate_actions_agree(layers: int) -> None:
    bundle = perturbed_bundle(num_layers=layers)
    rollout = _rollout(bundle)
    evaluated = bundle.evaluate_actions(rollout.inputs, rollout.actions, rollout.masks, rollout.initial_hidden)
    torch.testing.assert_close(evaluated.log_probs, rollout.log_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(evaluated.values, rollout.values, rtol=1e-5, atol=1e-6)
    assert float(rollout.log_probs.abs().max()) > 0.1  # a non-trivial policy


def test_seam_parity_under_bf16_autocast() -> None:
    """bf16 keeps 8 significant bits (unit roundoff 2**-9 ~ 2e-3). The rollout runs one step at a time and the
    update the whole sequence; where kernels block differently by sequence length (not on this CPU, where the two
    agree exactly) a few intermediate roundings can flip, and with logits of magnitude ~1-5 one flip moves a
    log-prob by ~1e-2. 5e-2 absolute allows a few flips and still fails for any real mismatch (wrong mask, hidden
    state or head), which moves log-probs by 0.5-5 here."""
    bundle = perturbed_bundle()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rollout = _rollout(bundle)
        evaluated = bundle.evaluate_actions(rollout.inputs, rollout.actions, rollout.masks, rollout.initial_hidden)
    assert evaluated.log_probs.dtype == torch.float32 and evaluated.entropy.dtype == torch.float32
    torch.testing.assert_close(evaluated.log_probs, rollout.log_probs, rtol=0.0, atol=5e-2)
    assert torch.isfinite(evaluated.entropy).all()


def test_irrelevant_heads_are_canonical_with_zero_log_prob_and_entropy() -> None:
    bundle = perturbed_bundle()
    rollout = _rollout(bundle, steps=6)
    evaluated = bundle.evaluate_actions(rollout.inputs, rollout.actions, rollout.masks, rollout.initial_hidden)
    ops = rollout.actions[..., HEAD_INDEX[ActionHead.OP]]
    assert len(set(ops.flatten().tolist())) > 2
    for head, column in HEAD_INDEX.items():
        irrelevant = torch.tensor([[not is_relevant(LifecycleOp(int(op)), head) for op in row] for row in ops])
        assert torch.equal(rollout.relevant[..., column], ~irrelevant)  # what the bundle reports with each action
        assert (rollout.log_probs[..., column][irrelevant] == 0).all()
        assert (evaluated.entropy[..., column][irrelevant] == 0).all()
        assert (evaluated.log_probs[..., column][irrelevant] == 0).all()
        assert (rollout.masks[..., column, :][irrelevant].sum(dim=-1) == 1).all()
        if head in HEAD_PLACEHOLDERS:
            assert (rollout.actions[..., column][irrelevant] == HEAD_PLACEHOLDERS[head]).all()
    waits = ops == LifecycleOp.WAIT
    assert (rollout.actions[..., HEAD_INDEX[ActionHead.SLOT]][waits] == 0).all()  # first slot WAIT "allows"


@pytest.mark.parametrize("deterministic", [False, True])
def test_the_sampler_draws_under_the_updates_canonical_masks(deterministic: bool) -> None:
    """The compiled sampler applies the canonical rule itself: every mask it returns is what the update's
    ``canonical_masks`` makes of it for the drawn op, every action is allowed by its mask, and no padding column
    (after a head's own size) is ever allowed."""
    bundle = perturbed_bundle()
    rollout = _rollout(bundle, steps=6, deterministic=deterministic)
    padded = rollout.masks.numpy()
    ops = rollout.actions[..., HEAD_INDEX[ActionHead.OP]].numpy()
    assert len(set(ops.flatten().tolist())) > 1
    assert np.array_equal(canonical_masks(ops, padded), padded)
    assert np.take_along_axis(padded, rollout.actions.numpy()[..., None], axis=-1).all()
    for column, size in enumerate(bundle.network.layout.sizes):
        assert not padded[..., column, size:].any()


def _joint_actions(masks: ActionMasks) -> tuple[torch.Tensor, torch.Tensor]:
    """Every canonical factored action the masks of env 0 allow (``[count, 1, H]``), with the (op-conditioned)
    padded masks to score it (``[count, 1, H, width]``)."""
    rows: list[tuple[int, ...]] = []
    mask_rows: list[torch.Tensor] = []
    for op in LifecycleOp:
        if not masks.op[0, op]:
            continue
        per_head = {
            **{h: m[0] for h, m in masks.heads.items()},
            ActionHead.SLOT: masks.slot_by_op[0, op],
            ActionHead.OP: masks.op[0],
        }
        padded = torch.zeros(len(HEAD_ORDER), mask_width(masks.head_sizes), dtype=torch.bool)
        choices: dict[ActionHead, list[int]] = {}
        for head in HEAD_ORDER:
            padded[HEAD_INDEX[head], : per_head[head].shape[0]] = per_head[head]
            values = torch.nonzero(per_head[head]).flatten().tolist()
            if head is ActionHead.OP:
                choices[head] = [int(op)]
            elif is_relevant(op, head):
                choices[head] = values
            else:
                choices[head] = [values[0] if head is ActionHead.SLOT else HEAD_PLACEHOLDERS[head]]
        for combination in product(*(choices[head] for head in HEAD_ORDER)):
            rows.append(combination)
            mask_rows.append(padded)
    return torch.tensor(rows).unsqueeze(1), torch.stack(mask_rows).unsqueeze(1)


def test_joint_probability_of_all_factored_actions_sums_to_one() -> None:
    """The joint log-prob is the sum of the per-head log-probs (irrelevant heads add 0): summed over every
    canonical action the masks allow, the probabilities make exactly one distribution."""
    bundle = perturbed_bundle()
    busy = observation(
        [slot(0, SeedStage.BLENDING, seed(alpha=AlphaSnapshot(0.7, 0.7))), slot(1, SeedStage.HOLDING), slot(2)]
    )
    encoded = bundle.encode([busy])
    assert bool(encoded.masks.op.all())  # every op is possible here
    actions, masks = _joint_actions(encoded.masks)
    count = actions.shape[0]
    evaluated = bundle.evaluate_actions(
        {name: value.unsqueeze(1).expand(count, 1, -1) for name, value in encoded.inputs.items()},
        actions,
        masks,
        bundle.initial_hidden(count),
    )
    joint = evaluated.log_probs.sum(dim=-1)
    assert joint.exp().sum().item() == pytest.approx(1.0, abs=1e-4)


def test_gradients_reach_every_head_the_lstm_the_trunk_and_the_embedding() -> None:
    bundle = perturbed_bundle(num_layers=2)
    rollout = _rollout(bundle, steps=6)
    relevant_somewhere = {
        head: any(
            is_relevant(LifecycleOp(int(op)), head) for op in rollout.actions[..., HEAD_INDEX[ActionHead.OP]].flatten()
        )
        for head in HEAD_ORDER
    }
    assert all(relevant_somewhere.values())
    evaluated = bundle.evaluate_actions(rollout.inputs, rollout.actions, rollout.masks, rollout.initial_hidden)
    loss = evaluated.values.sum() + (evaluated.log_probs + evaluated.entropy).sum()
    loss.backward()  # type: ignore[no-untyped-call]
    network = bundle.network
    heads = network.heads
    for index, size in enumerate((*network.layout.sizes, 1)):  # every head, then the value head
        rows = slice(index * heads.hidden_dim, (index + 1) * heads.hidden_dim)
        assert heads.hidden.weight.grad is not None and heads.hidden.weight.grad[rows].abs().sum() > 0
        assert heads.output_weight.grad is not None and heads.output_weight.grad[index, :, :size].abs().sum() > 0
        assert heads.output_weight.grad[index, :, size:].abs().sum() == 0
    assert isinstance(network.lstm, StepwiseLSTM)
    for layer in network.lstm.layers:
        assert isinstance(layer, LSTMLayer)
        for parameter in (layer.weight_ih, layer.weight_hh, layer.bias):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    for parameter in network.trunk.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    embedding_grad = network.blueprint_embedding.weight.grad
    assert embedding_grad is not None
    used = torch.unique(rollout.inputs["blueprint_indices"])
    assert embedding_grad[used[used > 0]].abs().sum() > 0 and embedding_grad[0].abs().sum() == 0


def test_get_action_is_inference_only_and_its_hidden_state_can_seed_an_update() -> None:
    bundle = perturbed_bundle()
    encoded = bundle.encode(varied_observations())
    result = bundle.get_action(encoded, bundle.initial_hidden(4))
    assert result.log_probs.is_inference() and not result.values.requires_grad
    assert result.values.shape == (4,) and result.values.dtype == torch.float32
    heads, width = len(HEAD_ORDER), mask_width(encoded.masks.head_sizes)
    assert result.actions.shape == (4, heads) and result.actions.dtype == torch.int64
    assert result.log_probs.shape == (4, heads) and result.log_probs.dtype == torch.float32
    assert result.masks.shape == (4, heads, width) and result.masks.dtype == torch.bool
    assert result.relevant.shape == (4, heads) and result.relevant.dtype == torch.bool
    evaluated = bundle.evaluate_actions(
        {name: value.unsqueeze(1) for name, value in encoded.inputs.items()},
        result.actions.unsqueeze(1),
        result.masks.unsqueeze(1),
        result.hidden,
    )
    assert evaluated.values.requires_grad and evaluated.values.shape == (4, 1)


def test_deterministic_actions_and_generators_are_reproducible() -> None:
    bundle = perturbed_bundle()
    first, second = _rollout(bundle, deterministic=True), _rollout(bundle, deterministic=True)
    assert torch.equal(first.actions, second.actions)
    sampled_a, sampled_b = _rollout(bundle), _rollout(bundle)  # same generator seed inside
    assert torch.equal(sampled_a.actions, sampled_b.actions)


@settings(max_examples=25, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_sampled_actions_respect_the_masks(batch: list[EnvObservation], seed_value: int) -> None:
    bundle = _SHARED_BUNDLE
    encoded = bundle.encode(batch)
    result = bundle.get_action(
        encoded, bundle.initial_hidden(len(batch)), generator=torch.Generator().manual_seed(seed_value)
    )
    ops = result.actions[:, HEAD_INDEX[ActionHead.OP]]
    assert bool(encoded.masks.op.gather(1, ops.unsqueeze(1)).all())
    for row, op in enumerate(ops.tolist()):
        for head, column in HEAD_INDEX.items():
            action = int(result.actions[row, column])
            assert bool(result.masks[row, column, action])
            if head is ActionHead.SLOT:
                assert bool(encoded.masks.slot_by_op[row, op, action])
            elif head is not ActionHead.OP and is_relevant(LifecycleOp(op), head):
                assert bool(encoded.masks.heads[head][row, action])


_SHARED_BUNDLE = perturbed_bundle()


def test_inputs_are_validated_at_the_boundary() -> None:
    bundle = perturbed_bundle()
    encoded = bundle.encode(varied_observations())
    hidden = bundle.initial_hidden(4)
    features = encoded.inputs["features"]
    with pytest.raises(FeatureWidthError, match=f"feature_dim={bundle.feature_dim}"):
        bundle.get_action(replace(encoded, inputs={**encoded.inputs, "features": features[:, :-1]}), hidden)
    with pytest.raises(TypeError, match="floating"):
        bundle.get_action(replace(encoded, inputs={**encoded.inputs, "features": features.long()}), hidden)
    with pytest.raises(FeatureWidthError, match=r"policy inputs are \['features'\], this policy reads"):
        bundle.get_action(replace(encoded, inputs={"features": features}), hidden)
    short_style = {**encoded.masks.heads, ActionHead.STYLE: encoded.masks.heads[ActionHead.STYLE][:, :2]}
    bad_masks = ActionMasks.of(encoded.masks.op, encoded.masks.slot_by_op, short_style)
    with pytest.raises(
        MaskShapeError, match=r"head sizes \{[^}]*'style': 2[^}]*\}, this policy's are \{[^}]*'style': 4"
    ):
        bundle.get_action(replace(encoded, masks=bad_masks), hidden)
    columns = encoded.masks.side_by_side.shape[1]
    three_rows = ActionMasks(encoded.masks.side_by_side[:3], encoded.masks.head_sizes)
    with pytest.raises(
        MaskShapeError, match=rf"side-by-side mask has shape \[3, {columns}\], expected \[4, {columns}\]"
    ):
        bundle.get_action(replace(encoded, masks=three_rows), hidden)
    with pytest.raises(ConfigError, match=r"hidden state h has shape \[1, 3, 64\]"):
        bundle.get_action(encoded, bundle.initial_hidden(3))
    rollout = _rollout(bundle, steps=2)
    with pytest.raises(FeatureWidthError, match="rank 3"):
        bundle.evaluate_actions(
            {**rollout.inputs, "features": rollout.inputs["features"][:, 0]},
            rollout.actions,
            rollout.masks,
            rollout.initial_hidden,
        )
    heads, width = len(HEAD_ORDER), bundle.network.layout.width
    with pytest.raises(
        MaskShapeError, match=rf"stored mask has shape \[4, 2, {heads}, 5\], expected \[4, 2, {heads}, {width}\]"
    ):
        bundle.evaluate_actions(rollout.inputs, rollout.actions, rollout.masks[..., :5], rollout.initial_hidden)
    with pytest.raises(MaskShapeError, match=rf"stored actions are torch.int64 \[4, 2, {heads - 1}\], expected int64"):
        bundle.evaluate_actions(rollout.inputs, rollout.actions[..., 1:], rollout.masks, rollout.initial_hidden)


def test_an_all_false_stored_mask_row_always_raises() -> None:
    bundle = perturbed_bundle()
    assert not bundle.validate_masks
    rollout = _rollout(bundle, steps=2)
    forbidden = rollout.masks.clone()
    forbidden[..., HEAD_INDEX[ActionHead.OP], :] = False
    with pytest.raises(InvalidStateMachineError, match="all-false op mask"):
        bundle.evaluate_actions(rollout.inputs, rollout.actions, forbidden, rollout.initial_hidden)


def test_an_all_false_mask_row_or_a_nan_policy_raises_when_acting() -> None:
    bundle = perturbed_bundle()
    assert not bundle.validate_masks
    encoded = bundle.encode([observation(germinations_remaining=2)])
    hidden = bundle.initial_hidden(1)
    empty = ActionMasks.of(torch.zeros_like(encoded.masks.op), encoded.masks.slot_by_op, encoded.masks.heads)
    with pytest.raises(InvalidStateMachineError, match="all-false op mask"):
        bundle.get_action(replace(encoded, masks=empty), hidden)
    with torch.no_grad():
        next(bundle.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="logits"):
        bundle.get_action(encoded, hidden)


def _stored(features: torch.Tensor) -> dict[str, torch.Tensor]:
    """``n`` stored steps of this policy's inputs with the given raw features (no seed in any slot)."""
    return {
        "features": features,
        "blueprint_indices": torch.zeros(features.shape[0], SLOTS.num_slots, dtype=torch.int64),
    }


def test_normalizer_merges_batches_exactly_and_ignores_non_finite_rows() -> None:
    bundle = LSTMPolicyBundle(SLOTS)
    data = torch.randn(300, bundle.feature_dim, dtype=torch.float64).float() * 3 + 1
    poisoned = torch.cat((data[:100], torch.full((1, bundle.feature_dim), float("nan"))))
    bundle.update_normalizer(_stored(poisoned))
    bundle.update_normalizer(_stored(data[100:250]))
    bundle.update_normalizer(_stored(data[250:]))
    normalizer = bundle.network.normalizer
    assert normalizer.count.item() == 300
    np.testing.assert_allclose(normalizer.mean.numpy(), data.double().mean(0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalizer.var.numpy(), data.double().var(0, unbiased=False).numpy(), rtol=1e-5)
    with pytest.raises(FeatureWidthError):
        bundle.update_normalizer(_stored(data[:, :5]))
    with pytest.raises(FeatureWidthError, match="policy inputs are"):
        bundle.update_normalizer({"features": data})


def test_normalizer_is_frozen_during_rollouts() -> None:
    bundle = perturbed_bundle()
    before = {k: v.clone() for k, v in bundle.network.normalizer.state_dict().items()}
    _rollout(bundle)
    after = bundle.network.normalizer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_placement_and_identity() -> None:
    bundle = LSTMPolicyBundle(SLOTS, kind="custom")
    assert bundle.kind == "custom" and bundle.feature_schema_version >= 1
    assert bundle.device == torch.device("cpu") and bundle.dtype == torch.float32 and not bundle.is_compiled
    assert bundle.to("cpu") is bundle
    network = bundle.network
    with (
        mock.patch.object(network, "parameters", return_value=iter(())),
        mock.patch.object(network, "buffers", return_value=iter(())),
    ):
        assert bundle.device == torch.device("cpu") and bundle.dtype == torch.float32
    encoded = bundle.encode(varied_observations())
    assert encoded.inputs["features"].device == bundle.device and encoded.masks.op.device == bundle.device


def test_validation_accepts_padding_steps_whose_masks_allow_everything() -> None:
    """Simic pads finished envs with masks allowing every action of every head (padding columns stay False) and
    zero actions; validation must not mistake that for a bug."""
    bundle = perturbed_bundle()
    bundle.validate_masks = True
    rollout = _rollout(bundle, steps=2)
    padded_masks = torch.zeros_like(rollout.masks)
    for column, size in enumerate(bundle.network.layout.sizes):
        padded_masks[..., column, :size] = True
    result = bundle.evaluate_actions(
        rollout.inputs, torch.zeros_like(rollout.actions), padded_masks, rollout.initial_hidden
    )
    assert torch.isfinite(result.log_probs).all()
