"""Each implementation assigned to the leyline protocol it claims: mypy (strict) checks these assignments, so a
signature drift fails CI before any runtime check; the tests then repeat the check at runtime, and every policy
kind tamiyo registers passes simic's ``check_policy_bundle`` (what simic relies on, called with real inputs)."""

from __future__ import annotations

import pytest

from esper.leyline import Controller, PolicyBundle, SlotConfig, Topology
from esper.simic.policy_check import check_policy_bundle
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import (
    HeuristicController,
    LSTMPolicyBundle,
    RandomValidController,
    RegistrablePolicy,
    StaticController,
    create_policy,
    list_policies,
    register_builtin_policies,
)

_SLOTS = SlotConfig.after_blocks(2)


def _controllers() -> list[Controller]:
    heuristic: Controller = HeuristicController(_SLOTS, Topology.CNN)
    random_valid: Controller = RandomValidController(_SLOTS, Topology.CNN, seed=0)
    static: Controller = StaticController()
    register_builtin_policies()
    learned: Controller = PolicyController(create_policy("lstm", _SLOTS), deterministic=True)
    return [heuristic, random_valid, static, learned]


def _bundles() -> list[PolicyBundle]:
    register_builtin_policies()
    direct: PolicyBundle = LSTMPolicyBundle(_SLOTS, topology=Topology.CNN)
    from_factory: PolicyBundle = create_policy("lstm", _SLOTS)
    return [direct, from_factory]


_REGISTRABLE: type[RegistrablePolicy] = LSTMPolicyBundle


def test_implementations_satisfy_their_protocols_at_runtime() -> None:
    controllers = _controllers()
    assert all(isinstance(controller, Controller) for controller in controllers)
    assert len({controller.name for controller in controllers}) == len(controllers)
    bundles = _bundles()
    assert all(isinstance(bundle, PolicyBundle) for bundle in bundles)
    assert all(bundle.kind == "lstm" for bundle in bundles)
    assert _REGISTRABLE.build(kind="lstm", slot_config=_SLOTS, topology=Topology.CNN, sizes={}).kind == "lstm"


register_builtin_policies()


@pytest.mark.parametrize("kind", list_policies())
@pytest.mark.parametrize("slots", [SlotConfig.after_blocks(1), _SLOTS, SlotConfig.after_blocks(3)])
def test_every_registered_policy_kind_passes_the_policy_check(kind: str, slots: SlotConfig) -> None:
    check_policy_bundle(create_policy(kind, slots))


def test_a_deeper_lstm_bundle_passes_the_policy_check() -> None:
    check_policy_bundle(create_policy("lstm", _SLOTS, num_layers=2, hidden_dim=32))
