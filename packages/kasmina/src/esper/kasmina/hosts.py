"""The CNN host family and its presets (docs/design/hosts-and-blueprints.md).

Blocks Conv(k, no bias) -> BatchNorm -> ReLU with ``base_channels * 2**i`` channels, a 2x2 max-pool after each
of the first ``pool_layers`` blocks, global average pooling and a linear classifier. Slot ``r0c{i}`` sits after
block i (module ``blocks.{i}``), ``r1c{i}`` after its pool (module ``pools.{i}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor, nn

from esper.kasmina.initialization import build_on_meta, init_affine_
from esper.leyline import ConfigError, SlotConfig


@dataclass(frozen=True, slots=True)
class CNNHostConfig:
    in_channels: int
    num_classes: int
    base_channels: int
    kernel_size: int
    n_blocks: int
    pool_layers: int

    def __post_init__(self) -> None:
        positive = {
            "in_channels": self.in_channels,
            "base_channels": self.base_channels,
            "kernel_size": self.kernel_size,
            "n_blocks": self.n_blocks,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"CNNHostConfig.{name} must be >= 1, got {value}")
        if self.num_classes < 2:
            raise ConfigError(f"CNNHostConfig.num_classes must be >= 2, got {self.num_classes}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"CNNHostConfig.kernel_size must be odd (shape-preserving), got {self.kernel_size}")
        if not 0 <= self.pool_layers <= self.n_blocks:
            raise ConfigError(
                f"CNNHostConfig.pool_layers must be in [0, n_blocks={self.n_blocks}], got {self.pool_layers}"
            )

    @classmethod
    def preset(cls, name: str) -> CNNHostConfig:
        try:
            return CNN_HOST_PRESETS[name]
        except KeyError:
            raise ConfigError(f"unknown CNN host preset {name!r}; known: {', '.join(CNN_HOST_PRESETS)}") from None

    def block_channels(self, block: int) -> int:
        return self.base_channels << block

    def slot_sites(self, slot_config: SlotConfig) -> dict[str, str]:
        """Module path after which each slot sits (``blocks.{i}`` for row 0, ``pools.{i}`` for row 1)."""
        sites: dict[str, str] = {}
        for slot in slot_config.slot_ids:
            if slot.col >= self.n_blocks or slot.row > 1 or (slot.row == 1 and slot.col >= self.pool_layers):
                raise ConfigError(
                    f"slot {slot} does not exist in a CNN host with {self.n_blocks} blocks and "
                    f"{self.pool_layers} pooled blocks (r0c0..r0c{self.n_blocks - 1}, r1c<pooled block>)"
                )
            sites[str(slot)] = f"blocks.{slot.col}" if slot.row == 0 else f"pools.{slot.col}"
        return sites

    def example_input(self, image_size: int) -> Tensor:
        """A zero batch of one image, for the channel probe."""
        return torch.zeros(1, self.in_channels, image_size, image_size)


#: The app's task hosts. ``digits_*`` take 8x8 sklearn digits, ``cifar_*`` 32x32 CIFAR-10 images.
#: The impaired hosts (base 1, k 1) learn little alone and a lot with seeds: an honest, fast testbed.
CNN_HOST_PRESETS: Mapping[str, CNNHostConfig] = MappingProxyType(
    {
        "digits_impaired": CNNHostConfig(1, 10, base_channels=1, kernel_size=1, n_blocks=3, pool_layers=2),
        "digits_strong": CNNHostConfig(1, 10, base_channels=8, kernel_size=3, n_blocks=3, pool_layers=2),
        "cifar_baseline": CNNHostConfig(3, 10, base_channels=8, kernel_size=3, n_blocks=3, pool_layers=3),
        "cifar_impaired": CNNHostConfig(3, 10, base_channels=1, kernel_size=1, n_blocks=3, pool_layers=3),
    }
)


class CNNHost(nn.Module):
    """A plain CNN classifier: [B, in_channels, H, W] -> logits [B, num_classes]."""

    def __init__(self, config: CNNHostConfig) -> None:
        super().__init__()
        self.config = config
        blocks = []
        channels_in = config.in_channels
        for block in range(config.n_blocks):
            channels = config.block_channels(block)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels_in, channels, config.kernel_size, padding=config.kernel_size // 2, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                )
            )
            channels_in = channels
        self.blocks = nn.ModuleList(blocks)
        self.pools = nn.ModuleList(nn.MaxPool2d(2) for _ in range(config.pool_layers))
        self.classifier = nn.Linear(channels_in, config.num_classes)

    @classmethod
    def create(cls, config: CNNHostConfig, generator: torch.Generator) -> CNNHost:
        """A host initialised with PyTorch's default schemes, every draw from ``generator``."""
        host = build_on_meta(lambda: cls(config))
        init_affine_(host, generator)
        return host

    def forward(self, x: Tensor) -> Tensor:
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index < len(self.pools):
                x = self.pools[index](x)
        logits: Tensor = self.classifier(x.mean(dim=(2, 3)))
        return logits
