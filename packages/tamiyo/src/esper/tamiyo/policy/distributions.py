"""The one FP32 seam where a head's logits meet its mask: log-probs, sampling, argmax and normalized entropy.

Masked logits are set to ``MASKED_LOGIT_VALUE`` (-1e4, finite in fp16/bf16, so an all-masked row can
never turn into NaN) and everything after that runs in float32 with autocast off, whatever precision the
network ran in. Masked actions are excluded structurally from sampling and argmax (never merely improbable).

Log-probabilities, entropies and the sampling noise are torch (the update differentiates them; the noise comes
from the caller's generator on the policy's device). Picking an action from them (Gumbel-max: subtract, mask,
argmax) and checking the masks are exact IEEE operations done on host numpy arrays, where each costs a fraction
of a torch operator: the sampled actions are bit for bit those of the same operations in torch.
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
            self.log_probs = log_softmax_of_short_rows(masked)
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


def log_softmax_of_short_rows(values: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last dimension, computed with that dimension moved to the front.

    A head has at most a dozen actions, and torch's CPU kernel for the last dimension pays per row: moved to the
    front, the same reduction runs across all rows at once (on the act path's 64 envs x 13 candidate rows, 112 ->
    20 us, docs/performance.md). The result is a view in the original order; an entry may differ from
    ``log_softmax(dim=-1)`` in its last bit (another vectorization of ``exp``), and rollout and update both come
    here, so a stored log-prob and its re-score agree."""
    return torch.log_softmax(values.movedim(-1, 0), dim=0).movedim(0, -1)


def log_noise(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``log E`` with ``E ~ Exp(1)`` (float32, from ``generator`` when given): ``log p - log E`` is Gumbel-max.

    On the CPU, ``E = -log1p(-U)`` for a float64 uniform ``U``, rounded to float32: exactly the values, and the
    generator state, of ``Tensor.exponential_`` (its CPU kernel computes the same; the tests check ten million
    draws), at less than half its cost on the act path's 64 envs. Other devices keep ``exponential_`` (their
    kernels draw differently, and MPS has no float64)."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=torch.float32, device=device).exponential_(generator=generator).log()
    uniform = torch.empty(shape, dtype=torch.float64).uniform_(generator=generator)
    return uniform.neg_().log1p_().neg_().to(torch.float32).log_()


def draw(log_probs: FloatArray, mask: BoolArray, noise: FloatArray | None) -> IntArray:
    """``[...]`` one allowed action per row of ``log_probs`` ``[..., n]``: with ``noise`` (``log_noise``) a sample
    (argmax of ``log p - log E`` over the allowed actions), without it the most probable allowed action (the
    first one on ties)."""
    scores = log_probs if noise is None else log_probs - noise
    choice: IntArray = np.where(mask, scores, -np.inf).argmax(axis=-1)
    return choice


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
