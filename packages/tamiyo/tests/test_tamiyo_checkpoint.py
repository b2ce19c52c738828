"""Policy checkpoints: round trip, and every mismatch or corruption refused with CheckpointError, changing nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _tamiyo_fixtures import SLOTS, perturbed_bundle, varied_observations

from esper.leyline import HEAD_INDEX, CheckpointError, SlotConfig, Topology
from esper.tamiyo import LSTMPolicyBundle, NetworkSizes


def _actions(bundle: LSTMPolicyBundle) -> dict[str, list[float]]:
    encoded = bundle.encode(varied_observations())
    result = bundle.get_action(encoded, bundle.initial_hidden(4), deterministic=True)
    per_head = {head.value: result.log_probs[:, column].tolist() for head, column in HEAD_INDEX.items()}
    return per_head | {"values": result.values.tolist()}


def _through_bytes(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def test_round_trip_restores_weights_and_normalizer() -> None:
    trained = perturbed_bundle()
    fresh = LSTMPolicyBundle(SLOTS)
    assert _actions(fresh) != _actions(trained)
    fresh.load_state_dict(_through_bytes(trained.state_dict()))
    assert _actions(fresh) == _actions(trained)
    assert torch.equal(fresh.network.normalizer.mean, trained.network.normalizer.mean)
    assert fresh.network.normalizer.count.item() == trained.network.normalizer.count.item() > 0


def _edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = perturbed_bundle(seed_value=1).state_dict()
    state = {**state, "network": dict(state["network"])}
    change(state)
    return state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(feature_schema_version=s["feature_schema_version"] + 1), "feature_schema_version"),
        (lambda s: s.update(slot_config=["r0c0", "r0c1"]), "slot_config"),
        (lambda s: s.update(topology="transformer"), "topology"),
        (lambda s: s.update(sizes={**s["sizes"], "hidden_dim": 32}), "sizes"),
        (lambda s: s.update(kind="other"), "kind"),
        (lambda s: s.pop("network"), r"lacks \['network'\]"),
        (lambda s: s["network"].pop("trunk.0.weight"), r"missing \['trunk.0.weight'\]"),
        (lambda s: s["network"].update(extra=torch.zeros(1)), r"unexpected \['extra'\]"),
        (
            lambda s: s["network"].update({"lstm_norm.weight": torch.zeros(3)}),
            "lstm_norm.weight is torch.float32 \\[3\\]",
        ),
        (lambda s: s["network"].update({"lstm_norm.bias": torch.full((64,), float("nan"))}), "NaN or infinite"),
        (lambda s: s["network"].update({"normalizer.count": "many"}), "is a str, not a tensor"),
        (lambda s: s.update(network=[1, 2]), "mapping of tensors"),
    ],
)
def test_mismatch_or_corruption_is_refused_and_changes_nothing(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    bundle = LSTMPolicyBundle(SLOTS)
    before = _actions(bundle)
    with pytest.raises(CheckpointError, match=message):
        bundle.load_state_dict(_edit(change))
    assert _actions(bundle) == before


def test_non_mapping_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError, match="must be a mapping"):
        LSTMPolicyBundle(SLOTS).load_state_dict([("network", {})])  # type: ignore[arg-type]


def test_checkpoint_names_every_difference() -> None:
    other = LSTMPolicyBundle(SlotConfig.after_blocks(2), topology=Topology.TRANSFORMER, sizes=NetworkSizes(embed_dim=4))
    with pytest.raises(CheckpointError, match=r"slot_config.*topology.*sizes"):
        LSTMPolicyBundle(SLOTS).load_state_dict(other.state_dict())
