"""``create_policy``: the one way the app builds a policy bundle (from the registry, placed, then compiled)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from esper.leyline import ConfigError, SlotConfig, Topology
from esper.tamiyo.policy.registry import RegistrablePolicy, get_policy_class


def create_policy(
    kind: str,
    slot_config: SlotConfig,
    *,
    topology: Topology = Topology.CNN,
    device: torch.device | str = "cpu",
    compile_mode: str | None = None,
    **sizes: int,
) -> RegistrablePolicy:
    """Build a registered policy kind for an explicit slot config, move it to ``device``, then compile it.

    ``sizes`` are the kind's network sizes (``NetworkSizes`` for ``"lstm"``). Compilation happens after
    placement because a compiled graph is specialized to its device; a compile failure propagates (see
    ``LSTMPolicyBundle.compile``), it never silently yields an uncompiled policy.
    """
    if not isinstance(slot_config, SlotConfig):
        raise ConfigError(f"create_policy needs an explicit SlotConfig, got {type(slot_config).__name__}")
    policy_class = get_policy_class(kind)
    bundle = policy_class.build(kind=kind, slot_config=slot_config, topology=topology, sizes=sizes)
    bundle.to(device)
    if compile_mode is not None:
        bundle.compile(compile_mode)
    return bundle


def create_policy_from_config(
    config: Mapping[str, object], *, device: torch.device | str = "cpu", compile_mode: str | None = None
) -> RegistrablePolicy:
    """Rebuild an untrained bundle from ``PolicyBundle.build_config()`` (then load its ``state_dict``)."""
    try:
        kind = config["kind"]
        slot_names = config["slot_config"]
        topology = Topology(str(config["topology"]))
        sizes = config["sizes"]
    except (KeyError, ValueError) as error:
        raise ConfigError(f"policy config is incomplete or invalid: {error}") from None
    if not isinstance(kind, str) or not isinstance(slot_names, list) or not isinstance(sizes, Mapping):
        raise ConfigError("policy config needs kind: str, slot_config: list of slot ids, sizes: mapping")
    checked_sizes: dict[str, int] = {}
    for name, value in sizes.items():
        if not isinstance(name, str) or not isinstance(value, int):
            raise ConfigError(f"policy size {name!r} must be an integer or bool, got {value!r}")
        checked_sizes[name] = value
    return create_policy(
        kind,
        SlotConfig.from_ids(slot_names),
        topology=topology,
        device=device,
        compile_mode=compile_mode,
        **checked_sizes,
    )
