"""Deterministic parameter initialisation.

Modules are built on the meta device, so constructing them draws nothing from torch's global RNG (the caller's
randomness is left untouched), then materialised on the CPU and initialised from the caller's generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

M = TypeVar("M", bound=nn.Module)


def build_on_meta(factory: Callable[[], M]) -> M:
    """Run ``factory`` on the meta device and return the module materialised (uninitialised) on the CPU."""
    with torch.device("meta"):
        module = factory()
    return module.to_empty(device="cpu")


def init_weight_(weight: Tensor, generator: torch.Generator) -> None:
    """PyTorch's default for conv and linear weights (Kaiming uniform, a = sqrt(5)), from ``generator``."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)


def init_bias_(bias: Tensor, fan_in: int, generator: torch.Generator) -> None:
    """PyTorch's default bias: uniform in +-1/sqrt(fan_in), from ``generator``."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    with torch.no_grad():
        bias.uniform_(-bound, bound, generator=generator)


def init_affine_(module: nn.Module, generator: torch.Generator) -> None:
    """Default-initialise every conv, linear and norm layer inside ``module`` (in registration order)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            init_weight_(layer.weight, generator)
            if layer.bias is not None:
                init_bias_(layer.bias, layer.weight[0].numel(), generator)
        elif isinstance(layer, nn.GroupNorm | nn.LayerNorm | nn.BatchNorm2d):
            layer.reset_parameters()


def zero_(*tensors: Tensor | None) -> None:
    """Zero the given parameters (the last layer of a residual seed, so it starts as the identity)."""
    with torch.no_grad():
        for tensor in tensors:
            if tensor is not None:
                tensor.zero_()
