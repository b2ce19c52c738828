"""Slot sites in a host: the submodules after which slots sit, found by path and measured by one probe forward.

This is what makes any ``nn.Module`` a host without subclassing: a slot is a forward hook on a named submodule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor, nn

from esper.leyline import ConfigError, SlotId, Topology

#: Rank of a site's output per topology: feature maps [B, C, H, W], token sequences [B, T, C].
SITE_NDIM: Mapping[Topology, int] = MappingProxyType({Topology.CNN: 4, Topology.TRANSFORMER: 3})


@dataclass(frozen=True, slots=True)
class Site:
    """Where a slot sits: the submodule, and the channel count of its output."""

    module: nn.Module
    channels: int


def channel_dim(topology: Topology) -> int:
    return 1 if topology is Topology.CNN else -1


def find_sites(
    host: nn.Module, slot_sites: Mapping[SlotId, str], example_input: Tensor, topology: Topology
) -> dict[SlotId, Site]:
    """Resolve every site and probe its output shape with one forward of ``example_input``.

    The probe runs without gradients and in eval mode (BatchNorm statistics are not touched); every module's
    train/eval flag is restored afterwards. Each site must run exactly once per forward and output a tensor of
    the topology's rank.
    """
    paths = list(slot_sites.values())
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise ConfigError(f"each site can hold one slot; sites used twice: {duplicates}")
    modules = {slot: _resolve(host, path) for slot, path in slot_sites.items()}
    outputs: dict[SlotId, list[object]] = {slot: [] for slot in slot_sites}
    handles = [
        module.register_forward_hook(lambda _m, _a, out, seen=outputs[slot]: seen.append(out))
        for slot, module in modules.items()
    ]
    modes = {module: module.training for module in host.modules()}
    try:
        host.eval()
        with torch.no_grad():
            host(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    ndim = SITE_NDIM[topology]
    sites: dict[SlotId, Site] = {}
    for slot, seen in outputs.items():
        path = slot_sites[slot]
        if len(seen) != 1:
            raise ConfigError(f"site {path!r} of slot {slot} ran {len(seen)} times in the probe forward; need 1")
        (out,) = seen
        if not isinstance(out, Tensor) or out.dim() != ndim:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ConfigError(
                f"site {path!r} of slot {slot} outputs {shape}; a {topology.value} slot needs a rank-{ndim} tensor"
            )
        sites[slot] = Site(modules[slot], int(out.shape[channel_dim(topology)]))
    return sites


def _resolve(host: nn.Module, path: str) -> nn.Module:
    try:
        return host.get_submodule(path)
    except AttributeError:
        names = [name for name, _ in host.named_modules() if name]
        shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
        raise ConfigError(f"host has no submodule {path!r}; submodules: {shown}") from None
