"""The memory ablation: policy kind ``"mlp"`` is the LSTM policy with a feed-forward layer in the LSTM's place."""

from __future__ import annotations

import pytest
import torch
from _tamiyo_fixtures import SLOTS, varied_observations

from esper.leyline import CheckpointError, ConfigError, PolicyBundle, Topology
from esper.tamiyo import (
    MLPPolicyBundle,
    create_policy,
    create_policy_from_config,
    get_policy_class,
    register_builtin_policies,
)
from esper.tamiyo.policy.network import FeedForwardCore

register_builtin_policies()


def _scores(bundle: PolicyBundle, first_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs ``[4, 3, H]`` and values ``[4, 3]`` of the same stored actions over a 3-step sequence whose
    first step varies."""
    encoded = [bundle.encode(varied_observations(epoch)) for epoch in (first_epoch, 20, 21)]
    hidden = bundle.initial_hidden(4)
    result = bundle.get_action(encoded[1], hidden, deterministic=True)
    inputs = {name: torch.stack([e.inputs[name] for e in encoded], dim=1) for name in encoded[0].inputs}
    actions = result.actions.unsqueeze(1).expand(4, 3, -1)
    masks = result.masks.unsqueeze(1).expand(4, 3, -1, -1)
    with torch.no_grad():
        evaluated = bundle.evaluate_actions(inputs, actions, masks, bundle.initial_hidden(4))
    return evaluated.log_probs, evaluated.values


def test_the_mlp_kind_is_registered_and_has_no_memory_state() -> None:
    assert get_policy_class("mlp") is MLPPolicyBundle
    bundle = create_policy("mlp", SLOTS)
    assert isinstance(bundle, MLPPolicyBundle) and bundle.kind == "mlp"
    assert isinstance(bundle.network.lstm, FeedForwardCore)
    h, c = bundle.initial_hidden(5)
    assert h.shape == c.shape == (1, 5, 0)


@pytest.mark.parametrize(("kind", "remembers"), [("mlp", False), ("lstm", True)])
def test_only_the_lstm_lets_an_earlier_step_change_a_later_decision(kind: str, remembers: bool) -> None:
    torch.manual_seed(0)
    bundle = create_policy(kind, SLOTS)
    with torch.no_grad():
        for parameter in bundle.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    early, early_values = _scores(bundle, first_epoch=2)
    late, late_values = _scores(bundle, first_epoch=40)
    assert not torch.allclose(early_values[:, 0], late_values[:, 0])  # the first step itself differs
    later_steps_equal = torch.equal(early_values[:, 1:], late_values[:, 1:]) and torch.equal(early[:, 1:], late[:, 1:])
    assert later_steps_equal is not remembers


def test_an_mlp_checkpoint_round_trips_and_is_refused_by_an_lstm() -> None:
    torch.manual_seed(1)
    trained = create_policy("mlp", SLOTS, hidden_dim=32)
    rebuilt = create_policy_from_config(trained.build_config())
    assert isinstance(rebuilt, MLPPolicyBundle)
    rebuilt.load_state_dict(trained.state_dict())
    for name, value in trained.state_dict()["network"].items():
        assert torch.equal(value, rebuilt.state_dict()["network"][name])
    with pytest.raises(CheckpointError, match="kind"):
        create_policy("lstm", SLOTS, hidden_dim=32).load_state_dict(trained.state_dict())


def test_an_mlp_with_more_than_one_layer_is_refused() -> None:
    with pytest.raises(ConfigError, match="num_layers must be 1"):
        MLPPolicyBundle.build(kind="mlp", slot_config=SLOTS, topology=Topology.CNN, sizes={"num_layers": 2})
