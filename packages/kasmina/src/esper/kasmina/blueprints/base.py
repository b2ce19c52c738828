"""What a blueprint is: a seed module class with a deterministic initialiser, and its registry entry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from esper.leyline import Blueprint, Topology


class SeedModule(nn.Module, ABC):
    """A seed: maps an activation to one of the same shape. Residual seeds are the identity at birth."""

    @abstractmethod
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise every parameter from ``generator`` (the module was built on the meta device)."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...


@dataclass(frozen=True, slots=True)
class BlueprintSpec:
    """A registry entry: how to build the seed for ``channels`` and how many parameters it will have."""

    topology: Topology
    blueprint: Blueprint
    factory: Callable[[int], SeedModule]
    param_estimate: Callable[[int], int]

    @property
    def name(self) -> str:
        return self.blueprint.registry_name


def relu_from_zero(x: Tensor) -> Tensor:
    """ReLU whose subgradient at exactly 0 is 1 (``torch.relu`` uses 0).

    A residual seed ending in ``relu(GN(...))`` with a zero-initialised GroupNorm outputs exactly 0 at birth;
    with ``torch.relu`` no gradient would ever reach it and the seed could never learn.
    """
    return torch.where(x >= 0, x, 0.0)
