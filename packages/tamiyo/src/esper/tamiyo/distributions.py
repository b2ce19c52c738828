"""The one FP32 seam where a head's logits meet its mask: log-probs, sampling, argmax and normalized entropy.

Masked logits are set to leyline's ``MASKED_LOGIT_VALUE`` (-1e4, finite in fp16/bf16, so an all-masked row can
never turn into NaN) and everything after that runs in float32 with autocast off, whatever precision the
network ran in. Masked actions are excluded structurally from sampling and argmax (never merely improbable).
"""

from __future__ import annotations

import torch

from esper.leyline import MASKED_LOGIT_VALUE, InvalidStateMachineError


def check_mask_rows(mask: torch.Tensor, name: str) -> None:
    """Raise ``InvalidStateMachineError`` if some row allows nothing. Reads the mask on the host: a device sync."""
    empty = ~mask.any(dim=-1)
    if bool(empty.any()):
        rows = torch.nonzero(empty).tolist()
        raise InvalidStateMachineError(f"all-false {name} mask at rows {rows}: no action is possible")


class MaskedCategorical:
    """A categorical distribution over the allowed actions of one head.

    ``logits`` ``[..., n]`` (any float dtype), ``mask`` ``[..., n]`` bool with the same shape. ``validate``
    checks for all-false rows, which costs a device sync; with it off nothing here reads a tensor on the host.
    """

    __slots__ = ("log_probs", "mask")

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor, *, validate: bool, name: str = "action") -> None:
        if validate:
            check_mask_rows(mask, name)
        with torch.autocast(logits.device.type, enabled=False):
            masked = logits.float().masked_fill(~mask, MASKED_LOGIT_VALUE)
            #: ``[..., n]`` float32 normalized log-probabilities (masked entries underflow to probability 0).
            self.log_probs = torch.log_softmax(masked, dim=-1)
        self.mask = mask

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """``[...]`` float32 log-probability of ``actions`` ``[...]`` int64."""
        return self.log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """``[...]`` float32 entropy over the allowed actions divided by ln(number allowed); exactly 0 when a
        single action is allowed (one choice carries no uncertainty, and 0/0 must not become NaN)."""
        terms = torch.where(self.mask, self.log_probs.exp() * self.log_probs, 0.0)
        entropy = -terms.sum(dim=-1)
        allowed = self.mask.sum(dim=-1)
        normalizer = allowed.clamp(min=2).to(torch.float32).log()
        return torch.where(allowed > 1, entropy / normalizer, 0.0)

    def sample(self, generator: torch.Generator | None) -> torch.Tensor:
        """``[...]`` int64 draw, from ``generator`` when given: Gumbel-max (log p - log E with E ~ Exp(1)) taken
        over the allowed actions only."""
        noise = torch.empty_like(self.log_probs).exponential_(generator=generator)
        return torch.where(self.mask, self.log_probs - noise.log(), float("-inf")).argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        """``[...]`` int64 most probable allowed action (first one on ties)."""
        return torch.where(self.mask, self.log_probs, float("-inf")).argmax(dim=-1)
