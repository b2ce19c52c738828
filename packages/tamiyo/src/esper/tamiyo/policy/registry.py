"""The policy registry: kind name -> bundle class. Thread-safe, explicit, and empty until someone registers.

Nothing registers at import time. ``register_builtin_policies()`` adds tamiyo's own kinds; the app calls it once
(it is idempotent). mypy checks a registered class against ``RegistrablePolicy`` statically; registration repeats
a structural check at runtime as a second line (it sees member names, not signatures).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol, Self

import torch

from esper.leyline import ConfigError, PolicyBundle, SlotConfig, Topology
from esper.tamiyo.policy.lstm_bundle import LSTMPolicyBundle, MLPPolicyBundle


class RegistrablePolicy(PolicyBundle, Protocol):
    """A ``PolicyBundle`` class the factory can build, place and compile: tamiyo's own interface, wider than the
    seam simic and the app see. ``build`` receives the registry name, the slot config, the topology and the
    keyword sizes given to ``create_policy`` (unknown sizes must raise ``ConfigError``); ``to`` moves an
    uncompiled bundle to a device; ``compile`` compiles it in place afterwards (``mode`` as for
    ``torch.compile``, failures propagate) and ``is_compiled`` says whether that happened. A compiled bundle
    cannot move: its graph is specialized to its device."""

    @classmethod
    def build(cls, *, kind: str, slot_config: SlotConfig, topology: Topology, sizes: Mapping[str, int]) -> Self: ...

    def to(self, device: torch.device | str) -> Self: ...

    def compile(self, mode: str) -> None: ...

    @property
    def is_compiled(self) -> bool: ...


_REQUIRED_MEMBERS = frozenset(
    name for protocol in (PolicyBundle, RegistrablePolicy) for name in vars(protocol) if not name.startswith("_")
)
_LOCK = threading.Lock()
_REGISTRY: dict[str, type[RegistrablePolicy]] = {}


def register_policy(kind: str, policy_class: type[RegistrablePolicy]) -> None:
    """Register ``policy_class`` under ``kind``. Registering the same class again is a no-op; another class
    under a taken name raises (unregister it first)."""
    if not kind or kind != kind.strip():
        raise ConfigError(f"policy kind must be a non-empty name without surrounding spaces, got {kind!r}")
    missing = sorted(name for name in _REQUIRED_MEMBERS if not hasattr(policy_class, name))
    if missing:
        raise ConfigError(f"{policy_class.__name__} does not implement the PolicyBundle protocol: lacks {missing}")
    with _LOCK:
        current = _REGISTRY.get(kind)
        if current is not None and current is not policy_class:
            raise ConfigError(f"policy kind {kind!r} is already registered to {current.__name__}")
        _REGISTRY[kind] = policy_class


def unregister_policy(kind: str) -> None:
    with _LOCK:
        if kind not in _REGISTRY:
            raise ConfigError(f"policy kind {kind!r} is not registered; registered kinds: {sorted(_REGISTRY)}")
        del _REGISTRY[kind]


def get_policy_class(kind: str) -> type[RegistrablePolicy]:
    with _LOCK:
        policy_class = _REGISTRY.get(kind)
        known = sorted(_REGISTRY)
    if policy_class is None:
        raise ConfigError(
            f"unknown policy kind {kind!r}; registered kinds: {known} "
            "(tamiyo's own kinds are registered by register_builtin_policies())"
        )
    return policy_class


def list_policies() -> tuple[str, ...]:
    with _LOCK:
        return tuple(sorted(_REGISTRY))


def register_builtin_policies() -> None:
    """Register tamiyo's policy kinds: ``"lstm"`` -> ``LSTMPolicyBundle`` and its memory ablation ``"mlp"`` ->
    ``MLPPolicyBundle``. Idempotent."""
    register_policy("lstm", LSTMPolicyBundle)
    register_policy("mlp", MLPPolicyBundle)
