"""CNN blueprints: feature maps [B, C, H, W] -> same shape, at any H, W and any C >= 1.

The catalogue and its parameter counts: docs/design/hosts-and-blueprints.md.

GroupNorm only (``group_count`` picks a group count that divides C); every residual seed zero-initialises its
last layer so it is the identity at birth; every ReLU is ``seed_relu`` (slope 1 at 0, a small slope below), so
no seed, however narrow its slot, can end up with exactly zero gradient; the squeeze-excite seed's gate is
2 sigmoid(z) with z = 0 at birth, so it is the identity too and the MULTIPLY operator starts at y = h.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esper.kasmina.blueprints.base import BlueprintSpec, SeedModule, seed_relu
from esper.kasmina.initialization import init_affine_, zero_
from esper.leyline import Blueprint, Topology

#: Largest GroupNorm group count we use, and the fewest channels we put in a group.
MAX_GROUPS = 8
MIN_CHANNELS_PER_GROUP = 4


def group_count(channels: int) -> int:
    """Largest divisor of ``channels`` that is <= MAX_GROUPS and leaves >= MIN_CHANNELS_PER_GROUP per group
    (1 for small C: one group normalises over channels and space together)."""
    fitting = [g for g in range(1, MAX_GROUPS + 1) if channels % g == 0 and channels // g >= MIN_CHANNELS_PER_GROUP]
    return max(fitting, default=1)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(group_count(channels), channels)


class NormSeed(SeedModule):
    """``x + tanh(scale) (GN(x) - x)``; scale starts at 0. Params 2C + 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels)
        self.scale = nn.Parameter(torch.empty(()))

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.scale)

    def forward(self, x: Tensor) -> Tensor:
        normed: Tensor = self.norm(x)
        return x + torch.tanh(self.scale) * (normed - x)


def attention_hidden(channels: int) -> int:
    """Squeeze-excite width: reduction 4, at least one unit."""
    return max(1, channels // 4)


class AttentionSeed(SeedModule):
    """Squeeze-excite ``x * 2 sigmoid(MLP(mean(x)))``; the MLP's last layer starts at 0 (gate 1, identity).

    Params 2 C r + r + C with r = max(1, C // 4) (about C^2 / 2 + C).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = attention_hidden(channels)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.excite.weight, self.excite.bias)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean(dim=(2, 3))
        hidden = seed_relu(self.squeeze(pooled))
        logits: Tensor = self.excite(hidden)
        return x * (2.0 * torch.sigmoid(logits))[:, :, None, None]


class DepthwiseSeed(SeedModule):
    """``x + relu(GN(pointwise(depthwise3x3(x))))``, GN starts at 0. Params C^2 + 11 C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = _group_norm(channels)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.norm.weight, self.norm.bias)

    def forward(self, x: Tensor) -> Tensor:
        branch: Tensor = self.norm(self.pointwise(self.depthwise(x)))
        return x + seed_relu(branch)


def bottleneck_width(channels: int) -> int:
    return max(8, channels // 4)


class BottleneckSeed(SeedModule):
    """``x + GN(up1x1(relu(conv3x3(relu(down1x1(x))))))`` of width b = max(8, C // 4); GN starts at 0.

    Params 2 C b + 9 b^2 + 2 C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        width = bottleneck_width(channels)
        self.down = nn.Conv2d(channels, width, 1, bias=False)
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.up = nn.Conv2d(width, channels, 1, bias=False)
        self.norm = _group_norm(channels)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.norm.weight, self.norm.bias)

    def forward(self, x: Tensor) -> Tensor:
        hidden = seed_relu(self.conv(seed_relu(self.down(x))))
        branch: Tensor = self.norm(self.up(hidden))
        return x + branch


class ConvSeed(SeedModule):
    """``x + relu(GN(conv(x)))`` with a k x k conv; GN starts at 0. Params k^2 C^2 + 2 C."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = _group_norm(channels)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.norm.weight, self.norm.bias)

    def forward(self, x: Tensor) -> Tensor:
        branch: Tensor = self.norm(self.conv(x))
        return x + seed_relu(branch)


class ConvHeavySeed(SeedModule):
    """Two 3x3 conv seeds in sequence (each the identity at birth). Params 18 C^2 + 4 C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = ConvSeed(channels, 3)
        self.second = ConvSeed(channels, 3)

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.first.reset_parameters(generator)
        self.second.reset_parameters(generator)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.second(self.first(x))
        return out


CNN_BLUEPRINTS: tuple[BlueprintSpec, ...] = (
    BlueprintSpec(Topology.CNN, Blueprint.NORM, NormSeed, lambda c: 2 * c + 1),
    BlueprintSpec(
        Topology.CNN,
        Blueprint.ATTENTION,
        AttentionSeed,
        lambda c: 2 * c * attention_hidden(c) + attention_hidden(c) + c,
    ),
    BlueprintSpec(Topology.CNN, Blueprint.DEPTHWISE, DepthwiseSeed, lambda c: c * c + 11 * c),
    BlueprintSpec(
        Topology.CNN,
        Blueprint.BOTTLENECK,
        BottleneckSeed,
        lambda c: 2 * c * bottleneck_width(c) + 9 * bottleneck_width(c) ** 2 + 2 * c,
    ),
    BlueprintSpec(Topology.CNN, Blueprint.CONV_SMALL, lambda c: ConvSeed(c, 1), lambda c: c * c + 2 * c),
    BlueprintSpec(Topology.CNN, Blueprint.CONV_LIGHT, lambda c: ConvSeed(c, 3), lambda c: 9 * c * c + 2 * c),
    BlueprintSpec(Topology.CNN, Blueprint.CONV_HEAVY, ConvHeavySeed, lambda c: 18 * c * c + 4 * c),
)
