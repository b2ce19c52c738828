"""The one FP32 seam where a head's logits meet its mask: log-probs and normalized entropy, the sampling noise.

Masked logits are set to ``MASKED_LOGIT_VALUE`` (-1e4, finite in fp16/bf16, so an all-masked row can
never turn into NaN) and everything after that runs in float32 with autocast off, whatever precision the
network ran in. Masked actions are excluded structurally from sampling and argmax (never merely improbable).

The update's log-probabilities and entropies are torch (it differentiates them), and so is the sampling noise
(from the caller's generator on the policy's device). The rollout differentiates nothing: it takes the same
formula row by row in compiled code (``factored_heads``), where a torch or numpy call per step would cost more
than the arithmetic. Checking masks and logits happens on host numpy arrays.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import HEAD_ORDER, ActionHead, InvalidStateMachineError, NonFiniteError

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Logit given to masked actions. -1e4 is representable in fp16 and bf16 and underflows to probability 0 after
#: softmax; ``-inf`` would turn an all-masked row into NaN.
MASKED_LOGIT_VALUE = -1e4


class MaskedCategorical:
    """A categorical distribution over the allowed actions of one head.

    ``logits`` ``[..., n]`` (any float dtype), ``mask`` ``[..., n]`` bool, broadcastable to each other. Nothing
    here reads a tensor on the host; callers check the masks with ``require_sound``.
    """

    __slots__ = ("log_probs", "mask")

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor) -> None:
        masked = torch.where(mask, logits.float(), MASKED_LOGIT_VALUE)
        device = logits.device.type
        # Autocast must not lower the log-softmax; entering the context only when it is on keeps the act path short.
        with torch.autocast(device, enabled=False) if torch.is_autocast_enabled(device) else nullcontext():
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


def log_noise(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``log E`` with ``E ~ Exp(1)`` (float32, on ``device``, from ``generator`` when given): ``log p - log E`` is
    Gumbel-max. The rollout on an accelerator draws with it; on the CPU the compiled sampler takes the uniforms
    and computes the same ``E`` itself (``factored_heads.exponential_log``)."""
    return torch.empty(shape, dtype=torch.float32, device=device).exponential_(generator=generator).log()


def require_sound(masks: BoolArray) -> None:
    """Raise ``InvalidStateMachineError`` if a row of the padded ``masks`` ``[..., H, width]`` allows nothing (a
    masked distribution would then sample uniformly over padding), naming the head (op first) and the rows."""
    empty = np.logical_not(masks.any(axis=-1))
    if not empty.any():
        return
    for index in sorted(range(len(HEAD_ORDER)), key=lambda i: HEAD_ORDER[i] is not ActionHead.OP):
        rows = np.argwhere(empty[..., index]).tolist()
        if rows:
            head = HEAD_ORDER[index].value
            raise InvalidStateMachineError(f"all-false {head} mask at rows {rows}: no action is possible")


def require_finite(logits: FloatArray) -> None:
    """Raise ``NonFiniteError`` if a logit is NaN or infinite (it would silently turn into "always the first
    action")."""
    if not np.isfinite(logits).all():
        raise NonFiniteError("the policy produced NaN or infinite logits: its weights or inputs are corrupt")
