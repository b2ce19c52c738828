"""Running mean/std of returns, so the value head regresses onto unit-scale targets whatever the reward scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from esper.leyline import CheckpointError


@dataclass
class ReturnNormalizer:
    """Parallel (Chan et al.) merge of batch moments into running moments; ``std`` never drops below ``eps``."""

    mean: float = 0.0
    var: float = 1.0
    count: float = 0.0
    eps: float = 1e-4

    @property
    def std(self) -> float:
        return max(math.sqrt(self.var), self.eps)

    def update(self, values: torch.Tensor) -> None:
        """Fold a 1-D batch of finite returns into the running moments (non-finite entries are ignored)."""
        finite = values[torch.isfinite(values)].double()
        n = finite.numel()
        if n == 0:
            return
        batch_mean = float(finite.mean())
        batch_var = float(finite.var(unbiased=False))
        if self.count == 0:
            self.mean, self.var, self.count = batch_mean, batch_var, float(n)
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta * delta * self.count * n / total) / total
        self.count = total

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.std + self.mean

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count, "eps": self.eps}

    @classmethod
    def from_state_dict(cls, state: object) -> ReturnNormalizer:
        """Rebuild from ``state_dict``; anything but four finite plain numbers with var, count >= 0 and eps > 0
        raises ``CheckpointError``."""
        if not isinstance(state, dict) or sorted(state) != ["count", "eps", "mean", "var"]:
            raise CheckpointError(f"return normalizer state must hold exactly mean, var, count and eps, got {state!r}")
        values = {}
        for key, value in state.items():
            if type(value) not in (int, float) or not math.isfinite(value):
                raise CheckpointError(f"return normalizer {key} must be a finite number, got {value!r}")
            values[key] = float(value)
        if values["var"] < 0 or values["count"] < 0 or not values["eps"] > 0:
            raise CheckpointError(f"return normalizer needs var >= 0, count >= 0 and eps > 0, got {values}")
        return cls(values["mean"], values["var"], values["count"], values["eps"])
