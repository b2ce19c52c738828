"""The blueprint registry: (topology, name) -> how to build a seed and how many parameters it will have."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import torch

from esper.kasmina.blueprints.base import BlueprintSpec, SeedModule
from esper.kasmina.blueprints.cnn import CNN_BLUEPRINTS
from esper.kasmina.blueprints.transformer import TRANSFORMER_BLUEPRINTS
from esper.kasmina.initialization import build_on_meta
from esper.leyline import Blueprint, ConfigError, Topology


class BlueprintRegistry:
    """Immutable lookup of blueprint specs keyed by ``(Topology, registry name)``."""

    def __init__(self, specs: Iterable[BlueprintSpec]) -> None:
        entries: dict[tuple[Topology, str], BlueprintSpec] = {}
        for spec in specs:
            if spec.blueprint is Blueprint.NOOP:
                raise ConfigError("NOOP is the 'no seed' action and cannot be registered as a blueprint")
            key = (spec.topology, spec.name)
            if key in entries:
                raise ConfigError(f"blueprint {spec.name!r} registered twice for topology {spec.topology.value}")
            entries[key] = spec
        self._entries: Mapping[tuple[Topology, str], BlueprintSpec] = MappingProxyType(entries)

    def __contains__(self, key: tuple[Topology, str]) -> bool:
        return key in self._entries

    def names(self, topology: Topology) -> tuple[str, ...]:
        return tuple(name for (top, name) in self._entries if top is topology)

    def spec(self, topology: Topology, blueprint: Blueprint | str) -> BlueprintSpec:
        name = blueprint.registry_name if isinstance(blueprint, Blueprint) else blueprint
        try:
            return self._entries[(topology, name)]
        except KeyError:
            known = ", ".join(self.names(topology))
            raise ConfigError(f"no blueprint {name!r} for topology {topology.value}; registered: {known}") from None

    def build(
        self, topology: Topology, blueprint: Blueprint | str, channels: int, generator: torch.Generator
    ) -> SeedModule:
        """A freshly initialised seed for ``channels`` on the CPU; its draws come only from ``generator``."""
        if channels < 1:
            raise ConfigError(f"a seed needs at least one channel, got {channels}")
        spec = self.spec(topology, blueprint)
        module = build_on_meta(lambda: spec.factory(channels))
        module.reset_parameters(generator)
        return module

    def empty(self, topology: Topology, blueprint: Blueprint | str, channels: int) -> SeedModule:
        """An uninitialised seed on the CPU, to load a checkpointed state into."""
        spec = self.spec(topology, blueprint)
        return build_on_meta(lambda: spec.factory(channels))

    def param_estimate(self, topology: Topology, blueprint: Blueprint | str, channels: int) -> int:
        """Parameters the seed will have at ``channels``, without building it."""
        return self.spec(topology, blueprint).param_estimate(channels)


#: Every blueprint kasmina can germinate. Built from two constant lists; importing it registers nothing else.
BLUEPRINTS = BlueprintRegistry((*CNN_BLUEPRINTS, *TRANSFORMER_BLUEPRINTS))
