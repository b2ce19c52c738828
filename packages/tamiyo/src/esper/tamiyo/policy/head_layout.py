"""All action heads side by side in one ``[..., num_heads, width]`` tensor (``width`` = the largest head).

Heads have different sizes; padding each to the widest one lets the masked-distribution math run once for all
heads instead of once per head (the act path's main cost). Padding columns are always masked out, so a padded
head is exactly the same categorical distribution as the unpadded one. Head ``i`` is ``HEAD_ORDER[i]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch.nn import functional

from esper.leyline import HEAD_ORDER, ActionHead, ConfigError

#: Column of each head in the padded layout.
HEAD_INDEX: Mapping[ActionHead, int] = MappingProxyType({head: index for index, head in enumerate(HEAD_ORDER)})


class HeadLayout:
    """Padding and unpadding between per-head tensors ``[..., size_h]`` and the padded ``[..., H, width]``."""

    def __init__(self, head_sizes: Mapping[ActionHead, int]) -> None:
        missing = [head.value for head in HEAD_ORDER if head not in head_sizes]
        if missing:
            raise ConfigError(f"head sizes are missing heads {missing}")
        self.sizes: tuple[int, ...] = tuple(head_sizes[head] for head in HEAD_ORDER)
        self.width = max(self.sizes)

    def pad_row(self, mask: torch.Tensor, head: ActionHead) -> torch.Tensor:
        """One head's ``[..., size_h]`` bool mask padded with False to ``[..., width]``."""
        return functional.pad(mask, (0, self.width - self.sizes[HEAD_INDEX[head]]), value=False)

    def pad_masks(self, masks: Mapping[ActionHead, torch.Tensor]) -> torch.Tensor:
        """``[..., H, width]`` bool; padding columns are False (never allowed)."""
        return torch.stack([self.pad_row(masks[head], head) for head in HEAD_ORDER], dim=-2)

    def split(self, padded: torch.Tensor) -> dict[ActionHead, torch.Tensor]:
        """``[..., H, width]`` -> ``{head: [..., size_h]}`` (views)."""
        return {
            head: padded[..., index, :size]
            for index, (head, size) in enumerate(zip(HEAD_ORDER, self.sizes, strict=True))
        }

    @staticmethod
    def columns(per_head_values: torch.Tensor) -> dict[ActionHead, torch.Tensor]:
        """``[..., H]`` -> ``{head: [...]}`` (views)."""
        return {head: per_head_values[..., index] for index, head in enumerate(HEAD_ORDER)}
