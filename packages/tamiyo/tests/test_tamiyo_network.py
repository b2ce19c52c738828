"""The recurrent actor-critic: LSTM correctness and forget bias, hidden shapes, initialization, sizes."""

from __future__ import annotations

import math

import pytest
import torch
from _tamiyo_fixtures import SLOTS
from torch import nn

from esper.leyline import (
    HEAD_ORDER,
    ActionHead,
    ConfigError,
    LifecycleOp,
    Topology,
    head_sizes,
)
from esper.tamiyo import NUM_BLUEPRINT_EMBEDDINGS, FactoredRecurrentActorCritic, NetworkSizes, feature_dim
from esper.tamiyo.policy.lstm import FORGET_BIAS, LSTMLayer, StepwiseLSTM


def _network(**sizes: int) -> FactoredRecurrentActorCritic:
    torch.manual_seed(0)
    return FactoredRecurrentActorCritic(
        feature_dim=feature_dim(3),
        num_slots=3,
        head_sizes=head_sizes(SLOTS, Topology.CNN),
        sizes=NetworkSizes.from_mapping(sizes),
    )


def _inputs(batch: int, time: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(batch, time, feature_dim(3), generator=generator)
    blueprints = torch.randint(0, NUM_BLUEPRINT_EMBEDDINGS, (batch, time, 3), generator=generator)
    return features, blueprints


@pytest.mark.parametrize("layers", [1, 3])
def test_stepwise_lstm_matches_torch_lstm(layers: int) -> None:
    torch.manual_seed(0)
    ours = StepwiseLSTM(5, 7, layers)
    reference = nn.LSTM(5, 7, layers, batch_first=True)
    with torch.no_grad():
        for index, layer in enumerate(ours.layers):
            assert isinstance(layer, LSTMLayer)
            getattr(reference, f"weight_ih_l{index}").copy_(layer.weight_ih)
            getattr(reference, f"weight_hh_l{index}").copy_(layer.weight_hh.T)
            getattr(reference, f"bias_ih_l{index}").copy_(layer.bias)
            getattr(reference, f"bias_hh_l{index}").zero_()
    inputs = torch.randn(4, 6, 5)
    hidden = (torch.randn(layers, 4, 7), torch.randn(layers, 4, 7))
    out, (h, c) = ours(inputs, hidden)
    expected, (h_ref, c_ref) = reference(inputs, hidden)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c, c_ref, rtol=1e-5, atol=1e-6)


def test_forget_gate_bias_is_effectively_one() -> None:
    lstm = StepwiseLSTM(3, 4, 2)
    for layer in lstm.layers:
        assert isinstance(layer, LSTMLayer)
        assert torch.equal(layer.bias[4:8], torch.full((4,), FORGET_BIAS))
        assert layer.bias[:4].abs().sum() == 0 and layer.bias[8:].abs().sum() == 0
    # Zero input and zero h: the forget gate sees exactly its bias, so c1 = sigmoid(1) * c0 (the candidate is tanh(0)).
    single = StepwiseLSTM(3, 4, 1)
    _, (_, c) = single(torch.zeros(1, 1, 3), (torch.zeros(1, 1, 4), torch.ones(1, 1, 4)))
    torch.testing.assert_close(c, torch.full((1, 1, 4), 1.0 / (1.0 + math.exp(-FORGET_BIAS))))


@pytest.mark.parametrize("layers", [1, 2])
def test_hidden_state_shapes_and_dtype(layers: int) -> None:
    network = _network(num_layers=layers, hidden_dim=16)
    h, c = network.initial_hidden(5, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert h.shape == c.shape == (layers, 5, 16) and h.dtype == torch.bfloat16 and not h.requires_grad
    features, blueprints = _inputs(5, 4)
    output = network(features, blueprints, network.initial_hidden(5, device=features.device, dtype=features.dtype))
    assert output.hidden[0].shape == output.hidden[1].shape == (layers, 5, 16)
    assert output.values.shape == (5, 4)
    assert output.logits.shape == (5, 4, len(HEAD_ORDER), max(head_sizes(SLOTS, Topology.CNN).values()))


def test_hidden_state_carries_across_calls() -> None:
    network = _network(num_layers=2)
    features, blueprints = _inputs(2, 6)
    hidden = network.initial_hidden(2, device=features.device, dtype=features.dtype)
    with torch.no_grad():
        whole = network(features, blueprints, hidden)
        first = network(features[:, :3], blueprints[:, :3], hidden)
        second = network(features[:, 3:], blueprints[:, 3:], first.hidden)
    torch.testing.assert_close(torch.cat((first.logits, second.logits), dim=1), whole.logits)
    torch.testing.assert_close(second.hidden[1], whole.hidden[1])


def test_padding_columns_are_zero_and_initial_policy_is_near_uniform() -> None:
    network = _network()
    features, blueprints = _inputs(3, 2)
    with torch.no_grad():
        output = network(features, blueprints, network.initial_hidden(3, device=features.device, dtype=features.dtype))
    for index, size in enumerate(network.layout.sizes):
        assert output.logits[..., index, size:].abs().sum() == 0
    op = HEAD_ORDER.index(ActionHead.OP)
    prior = torch.zeros(len(LifecycleOp))
    prior[[LifecycleOp.PRUNE, LifecycleOp.SET_ALPHA_TARGET]] = -2.0
    # policy outputs start at gain 0.01 around their prior: 0 except the destructive ops of the op head
    assert (output.logits[..., op, : len(LifecycleOp)] - prior).abs().max() < 0.5
    others = [i for i in range(len(HEAD_ORDER)) if i != op]
    assert output.logits[..., others, :].abs().max() < 0.5
    assert output.values.abs().max() < 2.0  # value output starts at gain 0.1


def test_destructive_op_prior_is_configurable() -> None:
    features, blueprints = _inputs(2, 1)
    op = HEAD_ORDER.index(ActionHead.OP)
    for logit in (0, -3):
        network = _network(destructive_op_logit=logit)
        with torch.no_grad():
            hidden = network.initial_hidden(2, device=features.device, dtype=features.dtype)
            logits = network(features, blueprints, hidden).logits[..., op, :]
        assert (logits[..., LifecycleOp.PRUNE] - logit).abs().max() < 0.5
        assert (logits[..., LifecycleOp.WAIT]).abs().max() < 0.5
    with pytest.raises(ConfigError, match="destructive_op_logit"):
        NetworkSizes(destructive_op_logit=1.5)  # type: ignore[arg-type]


def test_null_blueprint_row_is_fixed_at_zero() -> None:
    network = _network()
    assert network.blueprint_embedding.weight[0].abs().sum() == 0
    assert network.blueprint_embedding.num_embeddings == NUM_BLUEPRINT_EMBEDDINGS


def test_residual_and_sizes_are_validated() -> None:
    assert _network(lstm_residual=True, trunk_dim=32, hidden_dim=32).sizes.lstm_residual
    with pytest.raises(ConfigError, match="trunk_dim == hidden_dim"):
        NetworkSizes(trunk_dim=32, hidden_dim=64, lstm_residual=True)
    with pytest.raises(ConfigError, match="positive integer"):
        NetworkSizes(hidden_dim=0)
    with pytest.raises(ConfigError, match="unknown network sizes"):
        NetworkSizes.from_mapping({"width": 3})
    assert NetworkSizes.from_mapping(NetworkSizes(embed_dim=4).as_dict()) == NetworkSizes(embed_dim=4)
