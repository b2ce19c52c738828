"""How a seed's output joins the host activation, per lifecycle stage and blend operator (domain.md section 3).

h is the host activation at the slot, h_in the seed's input (h, detached while the seed is on probation) and
s = seed(h_in). ``alpha`` is a Python float in the ordinary forward, or a per-sample tensor broadcastable to h
during a counterfactual forward.
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


def blend(
    operator: BlendOperator, h: Tensor, h_in: Tensor, s: Tensor, alpha: float | Tensor, gate: BlendGate
) -> Tensor:
    """BLENDING, HOLDING, FOSSILIZED.

    ADD ``h + a (s - h)``; MULTIPLY ``h (1 + a tanh(s - h_in))`` (a residual seed is the identity at birth, so
    s - h_in = 0 and y = h); GATE ``h + a_eff (s - h)`` with ``a_eff = clamp(a * gate(h_in), 0, 1)``.
    """
    if operator is BlendOperator.ADD:
        return torch.lerp(h, s, alpha)
    if operator is BlendOperator.MULTIPLY:
        return torch.addcmul(h, h, torch.tanh(s - h_in) * alpha)
    return torch.lerp(h, s, (gate(h_in) * alpha).clamp(0.0, 1.0))
