"""Running mean/std normalization of observation features, stored as module buffers (so checkpoints carry it).

The statistics change only through ``update`` (Chan et al.'s parallel merge of batch moments, computed in
float64), which callers run after a rollout's update, never during a rollout: a rollout and its update then see
the same normalization. Rows with any non-finite value are skipped, so one NaN cannot poison the statistics.
Before the first update the transform is the identity (mean 0, variance 1).
"""

from __future__ import annotations

import torch
from torch import nn

from esper.leyline import FeatureWidthError

#: Normalized features are clipped to +/- this many standard deviations.
CLIP_STD = 10.0
#: Floor of the standard deviation, so a feature that was constant so far does not explode when it moves.
MIN_STD = 1e-2


class RunningNormalizer(nn.Module):
    """``forward(x)`` = clip((x - mean) / max(std, MIN_STD), +/-CLIP_STD) over the last dimension."""

    count: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("var", torch.ones(width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        std = self.var.clamp(min=MIN_STD**2).sqrt()
        return ((features - self.mean) / std).clamp(-CLIP_STD, CLIP_STD)

    @torch.no_grad()
    def update(self, features: torch.Tensor) -> None:
        """Fold ``[n, width]`` rows into the statistics (rows containing NaN/inf are ignored)."""
        if features.dim() != 2 or features.shape[1] != self.width:
            raise FeatureWidthError(f"normalizer update needs [n, {self.width}] features, got {list(features.shape)}")
        rows = features.detach().to(device=self.mean.device, dtype=torch.float64)
        rows = rows[torch.isfinite(rows).all(dim=1)]
        added = rows.shape[0]
        if added == 0:
            return
        batch_mean = rows.mean(dim=0)
        batch_var = rows.var(dim=0, unbiased=False)
        old_count = self.count.item()
        total = old_count + added
        old_mean = self.mean.to(torch.float64)
        delta = batch_mean - old_mean
        merged_mean = old_mean + delta * (added / total)
        old_m2 = self.var.to(torch.float64) * old_count
        merged_m2 = old_m2 + batch_var * added + delta.square() * (old_count * added / total)
        self.mean.copy_(merged_mean)
        self.var.copy_(merged_m2 / total)
        self.count.fill_(total)
