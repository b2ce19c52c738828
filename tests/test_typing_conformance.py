"""Each implementation assigned to the leyline protocol it claims: mypy (strict) checks these assignments, so a
signature drift fails CI before any runtime check; the test then repeats the check at runtime."""

from __future__ import annotations

from esper.leyline import Controller, PolicyBundle, SlotConfig, Topology
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import (
    HeuristicController,
    LSTMPolicyBundle,
    RandomValidController,
    RegistrablePolicy,
    StaticController,
    create_policy,
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
    assert all(bundle.feature_dim == bundles[0].feature_dim for bundle in bundles)
    assert _REGISTRABLE.build(kind="lstm", slot_config=_SLOTS, topology=Topology.CNN, sizes={}).kind == "lstm"
