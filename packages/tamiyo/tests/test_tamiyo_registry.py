"""Registry and factory: explicit registration, error cases, thread safety, compile-failure semantics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import torch
from _tamiyo_fixtures import SLOTS

from esper.leyline import ConfigError, PolicyBundle, SlotConfig, Topology
from esper.tamiyo import (
    LSTMPolicyBundle,
    create_policy,
    create_policy_from_config,
    get_policy_class,
    list_policies,
    register_builtin_policies,
    register_policy,
    unregister_policy,
)


@pytest.fixture(autouse=True)
def _builtins() -> Iterator[None]:
    register_builtin_policies()
    before = set(list_policies())
    yield
    for kind in set(list_policies()) - before:
        unregister_policy(kind)
    register_builtin_policies()


class _Subclass(LSTMPolicyBundle):
    """A second kind, to register under new names."""


class _NotABundle:
    @classmethod
    def build(cls) -> _NotABundle:
        return cls()


def test_builtin_registration_is_explicit_and_idempotent() -> None:
    register_builtin_policies()
    register_builtin_policies()
    assert "lstm" in list_policies() and get_policy_class("lstm") is LSTMPolicyBundle


def test_register_get_list_unregister() -> None:
    register_policy("lstm-sub", _Subclass)
    register_policy("lstm-sub", _Subclass)  # same class again: no-op
    assert get_policy_class("lstm-sub") is _Subclass and "lstm-sub" in list_policies()
    with pytest.raises(ConfigError, match="already registered to _Subclass"):
        register_policy("lstm-sub", LSTMPolicyBundle)
    unregister_policy("lstm-sub")
    assert "lstm-sub" not in list_policies() and "lstm" in list_policies()
    with pytest.raises(ConfigError, match="not registered"):
        unregister_policy("lstm-sub")
    with pytest.raises(ConfigError, match=r"unknown policy kind 'lstm-sub'.*register_builtin_policies"):
        get_policy_class("lstm-sub")


def test_registration_checks_the_protocol_at_runtime_too() -> None:
    with pytest.raises(ConfigError, match=r"_NotABundle does not implement the PolicyBundle protocol: lacks \["):
        register_policy("broken", _NotABundle)  # type: ignore[arg-type]  # mypy rejects it first
    with pytest.raises(ConfigError, match="non-empty name"):
        register_policy(" lstm", LSTMPolicyBundle)
    assert "broken" not in list_policies()


def test_concurrent_registration_loses_nothing() -> None:
    kinds = [f"kind-{index}" for index in range(64)]
    threads = [threading.Thread(target=register_policy, args=(kind, _Subclass)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(kinds) <= set(list_policies())


def test_factory_requires_an_explicit_slot_config_and_known_sizes() -> None:
    with pytest.raises(ConfigError, match="explicit SlotConfig"):
        create_policy("lstm", ["r0c0"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown network sizes \['depth'\]"):
        create_policy("lstm", SLOTS, depth=3)
    with pytest.raises(ConfigError, match="unknown policy kind"):
        create_policy("gru", SLOTS)


def test_factory_builds_places_and_names_the_bundle() -> None:
    register_policy("lstm-sub", _Subclass)
    bundle = create_policy("lstm-sub", SlotConfig.after_blocks(2), topology=Topology.TRANSFORMER, hidden_dim=32)
    assert isinstance(bundle, _Subclass) and isinstance(bundle, PolicyBundle)
    assert bundle.kind == "lstm-sub" and bundle.hidden_dim == 32 and bundle.device == torch.device("cpu")
    assert bundle.topology is Topology.TRANSFORMER and bundle.slot_config == SlotConfig.after_blocks(2)


def test_build_config_rebuilds_the_same_bundle() -> None:
    bundle = create_policy("lstm", SLOTS, embed_dim=4, num_layers=2, lstm_residual=True, trunk_dim=32, hidden_dim=32)
    config = json.loads(json.dumps(bundle.build_config()))
    rebuilt = create_policy_from_config(config)
    assert rebuilt.build_config() == bundle.build_config()
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in bundle.parameters()]
    with pytest.raises(ConfigError, match="incomplete or invalid"):
        create_policy_from_config({"kind": "lstm"})


def test_compile_failure_propagates_and_leaves_the_bundle_uncompiled(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no compiler backend")

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.raises(RuntimeError, match="no compiler backend"):
        create_policy("lstm", SLOTS, compile_mode="default")
    bundle = LSTMPolicyBundle(SLOTS)
    with pytest.raises(RuntimeError, match="no compiler backend"):
        bundle.compile("default")
    assert not bundle.is_compiled


def test_compile_modes_and_moving_after_compile() -> None:
    bundle = LSTMPolicyBundle(SLOTS)
    with pytest.raises(ConfigError, match="unknown compile mode 'fastest'"):
        bundle.compile("fastest")
    bundle.compile("default")  # lazy: nothing is traced until the first forward
    bundle.compile("default")
    assert bundle.is_compiled and isinstance(bundle.network, torch.nn.Module)
    assert type(bundle.network).__name__ == "FactoredRecurrentActorCritic"
    with pytest.raises(ConfigError, match="already compiled with mode 'default'"):
        bundle.compile("max-autotune")
    with pytest.raises(ConfigError, match="cannot move a compiled policy bundle"):
        bundle.to("cpu")
