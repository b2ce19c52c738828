"""The one FP32 seam where a head's logits meet its mask: log-probs, sampling, argmax and normalized entropy.

Masked logits are set to ``MASKED_LOGIT_VALUE`` (-1e4, finite in fp16/bf16, so an all-masked row can
never turn into NaN) and everything after that runs in float32 with autocast off, whatever precision the
network ran in. Masked actions are excluded structurally from sampling and argmax (never merely improbable).
"""

from __future__ import annotations

import torch

from esper.leyline import InvalidStateMachineError, NonFiniteError

#: Logit given to masked actions. -1e4 is representable in fp16 and bf16 and underflows to probability 0 after
#: softmax; ``-inf`` would turn an all-masked row into NaN.
MASKED_LOGIT_VALUE = -1e4


def require_sound(logits: torch.Tensor, masks: dict[str, torch.Tensor], *, finite_logits: bool) -> None:
    """Raise ``InvalidStateMachineError`` if a row of some mask allows nothing (a masked distribution would then
    sample uniformly over padding), and with ``finite_logits`` ``NonFiniteError`` if a logit is NaN or infinite
    (it would silently turn into "always the first action"). One host read for all checks: one device sync."""
    empty = torch.stack([(~mask.any(dim=-1)).any() for mask in masks.values()])
    problems = [empty.any()]
    if finite_logits:
        problems.append(~torch.isfinite(logits).all())
    flags = torch.stack(problems).tolist()
    if flags[0]:
        for name, mask in masks.items():
            rows = torch.nonzero(~mask.any(dim=-1)).tolist()
            if rows:
                raise InvalidStateMachineError(f"all-false {name} mask at rows {rows}: no action is possible")
    if finite_logits and flags[1]:
        raise NonFiniteError("the policy produced NaN or infinite logits: its weights or inputs are corrupt")


class MaskedCategorical:
    """A categorical distribution over the allowed actions of one head.

    ``logits`` ``[..., n]`` (any float dtype), ``mask`` ``[..., n]`` bool with the same shape. Nothing here reads
    a tensor on the host; callers check the masks once per step with ``require_sound``.
    """

    __slots__ = ("log_probs", "mask")

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
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
