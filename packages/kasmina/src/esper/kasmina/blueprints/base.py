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


#: Slope of ``seed_relu`` below 0.
NEGATIVE_SLOPE = 0.01


def seed_relu(x: Tensor) -> Tensor:
    """The ReLU of every CNN seed: slope 1 from 0 up (``torch.relu`` has subgradient 0 at 0), ``NEGATIVE_SLOPE``
    below.

    A residual seed ending in ``relu(GN(...))`` with a zero-initialised GroupNorm outputs exactly 0 at birth:
    with subgradient 0 there no gradient would ever reach it. And with a plain ReLU a seed on a narrow slot
    dies: on one channel a single GroupNorm bias that drifts below ``-|weight| * max|normalised x|`` (one
    early SGD step can do it) turns every position negative, and from then on the seed's gradient is exactly
    0, its gradient health 0, and the BLENDING gate refuses it forever. A 1x1 projection of a non-negative
    one-channel activation is likewise dead at birth wherever its weight is negative. The small negative slope
    keeps every unit trainable.
    """
    return torch.where(x >= 0, x, NEGATIVE_SLOPE * x)
