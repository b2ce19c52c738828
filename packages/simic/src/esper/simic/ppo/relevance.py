"""Which heads matter for each op, as a tensor: leyline's causal relevance table, built once for simic.

The PPO update masks every per-head term with it, and simic's tests build their policy double on it. Tamiyo
builds its own copy from the same leyline rows (simic and tamiyo never import each other; leyline has no torch).
"""

from __future__ import annotations

from functools import cache

import torch

from esper.leyline import relevance_rows


@cache
def _table() -> torch.Tensor:
    # An ordinary tensor even when the first call happens inside ``torch.inference_mode`` (a rollout).
    with torch.inference_mode(False):
        return torch.tensor(relevance_rows(), dtype=torch.bool)


def relevant_heads(ops: torch.Tensor) -> torch.Tensor:
    """``[..., heads]`` bool in ``HEAD_ORDER``: which heads matter for each op of ``ops`` ``[...]`` (CPU int64)."""
    return _table()[ops]
