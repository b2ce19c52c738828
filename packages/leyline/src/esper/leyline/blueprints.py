"""Blueprint identities per topology. Kasmina owns the modules; this file owns their names and indices."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum
from types import MappingProxyType


class Topology(StrEnum):
    """Kind of host a blueprint plugs into: feature maps [B, C, H, W] or token sequences [B, T, C]."""

    CNN = "cnn"
    TRANSFORMER = "transformer"


class Blueprint(IntEnum):
    """Every blueprint of every topology. The value is also the row of tamiyo's blueprint embedding;
    NOOP (0) doubles as that embedding's "no seed" row. Never renumber (checkpoints and observations)."""

    NOOP = 0
    NORM = 1
    ATTENTION = 2
    DEPTHWISE = 3
    BOTTLENECK = 4
    CONV_SMALL = 5
    CONV_LIGHT = 6
    CONV_HEAVY = 7
    LORA = 8
    LORA_LARGE = 9
    MLP_SMALL = 10
    MLP = 11

    @property
    def registry_name(self) -> str:
        """The name kasmina's registry uses, e.g. ``"conv_light"``."""
        return self.name.lower()


#: The blueprint head's actions per topology, in head order. Index 0 is always NOOP (never valid for GERMINATE).
TOPOLOGY_BLUEPRINTS: Mapping[Topology, tuple[Blueprint, ...]] = MappingProxyType(
    {
        Topology.CNN: (
            Blueprint.NOOP,
            Blueprint.NORM,
            Blueprint.ATTENTION,
            Blueprint.DEPTHWISE,
            Blueprint.BOTTLENECK,
            Blueprint.CONV_SMALL,
            Blueprint.CONV_LIGHT,
            Blueprint.CONV_HEAVY,
        ),
        Topology.TRANSFORMER: (
            Blueprint.NOOP,
            Blueprint.NORM,
            Blueprint.ATTENTION,
            Blueprint.LORA,
            Blueprint.LORA_LARGE,
            Blueprint.MLP_SMALL,
            Blueprint.MLP,
        ),
    }
)


def blueprint_from_name(name: str) -> Blueprint:
    """``"conv_light"`` -> ``Blueprint.CONV_LIGHT``, with an error that lists the known names."""
    try:
        return Blueprint[name.upper()]
    except KeyError:
        known = ", ".join(b.registry_name for b in Blueprint if b is not Blueprint.NOOP)
        raise ValueError(f"unknown blueprint {name!r}; known blueprints: {known}") from None
