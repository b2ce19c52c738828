"""How a seed's output joins the host activation, per lifecycle stage and blend operator (docs/design/blending.md).

h is the host activation at the slot, h_in the seed's input (h, detached while the seed is on probation) and
s = seed(h_in). While the seed is live the blend is computed from h_in and the host's gradient passes straight
through the slot (``pass_host_gradient``); a fossil blends h itself, so the full gradient flows through it.
``alpha`` is a Python float in the ordinary forward, or a per-sample tensor broadcastable to h during a
counterfactual forward.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esper.kasmina.initialization import build_on_meta, zero_
from esper.leyline import BlendOperator, Topology


class BlendGate(nn.Module):
    """The learned gate of the GATE operator: ``1 + tanh(w . h_in + b)`` per position, in [0, 2].

    Every seed gets one at germination, so a later SET_ALPHA_TARGET may switch to GATE. ``w`` and ``b`` start
    at zero, so the gate is 1 and a_eff == alpha at birth. It looks at one position (pixel or token) at a
    time, so it never sees future tokens.
    """

    def __init__(self, channels: int, topology: Topology) -> None:
        super().__init__()
        self.proj: nn.Conv2d | nn.Linear = (
            nn.Conv2d(channels, 1, kernel_size=1) if topology is Topology.CNN else nn.Linear(channels, 1)
        )

    @classmethod
    def create(cls, channels: int, topology: Topology) -> BlendGate:
        gate = build_on_meta(lambda: cls(channels, topology))
        zero_(gate.proj.weight, gate.proj.bias)
        return gate

    def forward(self, h_in: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, 1, H, W] (CNN) or [B, T, C] -> [B, T, 1] (transformer)."""
        logits: Tensor = self.proj(h_in)
        return 1.0 + torch.tanh(logits)


def incubate(h: Tensor, s: Tensor) -> Tensor:
    """TRAINING: ``h + (s - s.detach())``. The value is exactly h and the host's gradient is untouched, while the
    seed receives the full gradient of the output."""
    return h + (s - s.detach())


def blend(operator: BlendOperator, h: Tensor, s: Tensor, alpha: float | Tensor, gate: BlendGate) -> Tensor:
    """BLENDING, HOLDING, FOSSILIZED, with ``h`` the seed's input (detached for a live seed, see
    ``pass_host_gradient``).

    ADD ``h + a (s - h)``; MULTIPLY ``h (1 + a tanh(s - h))`` (a residual seed is the identity at birth, so
    s - h = 0 and y = h); GATE ``h + a_eff (s - h)`` with ``a_eff = clamp(a * gate(h), 0, 1)``.
    """
    if operator is BlendOperator.ADD:
        return torch.lerp(h, s, alpha)
    if operator is BlendOperator.MULTIPLY:
        return torch.addcmul(h, h, torch.tanh(s - h) * alpha)
    return torch.lerp(h, s, (gate(h) * alpha).clamp(0.0, 1.0))


def pass_host_gradient(h: Tensor, y: Tensor) -> Tensor:
    """A live (BLENDING, HOLDING) seed's output ``y``, blended from the detached ``h``: ``y + (h - h.detach())``.

    The value is exactly ``y``; the host below the slot receives the gradient it would receive if the slot were
    the identity, whatever alpha and the operator. Without this term a seed at alpha 1 (or a saturated GATE)
    would cut every host layer below its slot off from the task gradient for as long as the seed stays live.
    """
    return y + (h - h.detach())
