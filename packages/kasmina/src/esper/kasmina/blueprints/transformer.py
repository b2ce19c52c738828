"""Transformer blueprints: token sequences [B, T, C] -> same shape, at any T and any C >= 1.

LayerNorm over channels (per token; a GroupNorm would mix tokens), causal attention only (no seed looks at a
future token), and every residual seed zero-initialises its last layer so it is the identity at birth. The
attention and MLP seeds are pre-norm branches (``x + f(LN(x))``), as the host's own blocks are: fed the raw
residual stream, an attention seed's logits grew with the stream's scale and a seed learning at lr 0.02 collapsed
its host to 8 % next-token accuracy on pydoc-bytes (docs/results/pydoc-bytes.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from esper.kasmina.blueprints.base import BlueprintSpec, SeedModule
from esper.kasmina.initialization import init_affine_, zero_
from esper.leyline import Blueprint, Topology

#: Ranks of the two low-rank adapters ("lora r8", "lora_large r32").
LORA_RANK = 8
LORA_LARGE_RANK = 32
#: Hidden width of the MLP seeds as a multiple of C.
MLP_SMALL_EXPANSION = 1
MLP_EXPANSION = 4
#: Attention heads are at least this wide.
MIN_HEAD_DIM = 8


class TokenNormSeed(SeedModule):
    """``x + tanh(scale) (LN(x) - x)``; scale starts at 0. Params 2C + 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.scale = nn.Parameter(torch.empty(()))

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.scale)

    def forward(self, x: Tensor) -> Tensor:
        normed: Tensor = self.norm(x)
        return x + torch.tanh(self.scale) * (normed - x)


def attention_heads(channels: int) -> int:
    """Most heads (up to 8) that divide C while keeping each head >= MIN_HEAD_DIM wide; 1 for small C."""
    fitting = [h for h in (8, 4, 2) if channels % h == 0 and channels // h >= MIN_HEAD_DIM]
    return max(fitting, default=1)


class CausalAttentionSeed(SeedModule):
    """``x + out(causal_self_attention(LN(x)))``; ``out`` starts at 0. Params 4 C^2 + 6 C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = attention_heads(channels)
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.out.weight, self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, channels = x.shape
        qkv: Tensor = self.qkv(self.norm(x))
        q, k, v = qkv.view(batch, tokens, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        merged = attended.transpose(1, 2).reshape(batch, tokens, channels)
        branch: Tensor = self.out(merged)
        return x + branch


class LoraSeed(SeedModule):
    """Low-rank adapter ``x + up(down(x))`` of rank r, no biases; ``up`` starts at 0. Params 2 C r."""

    def __init__(self, channels: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(channels, rank, bias=False)
        self.up = nn.Linear(rank, channels, bias=False)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.up.weight)

    def forward(self, x: Tensor) -> Tensor:
        branch: Tensor = self.up(self.down(x))
        return x + branch


class MlpSeed(SeedModule):
    """``x + fc2(gelu(fc1(LN(x))))`` with hidden width e C; ``fc2`` starts at 0. Params 2 e C^2 + e C + 3 C."""

    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.fc1 = nn.Linear(channels, expansion * channels)
        self.fc2 = nn.Linear(expansion * channels, channels)

    def reset_parameters(self, generator: torch.Generator) -> None:
        init_affine_(self, generator)
        zero_(self.fc2.weight, self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        branch: Tensor = self.fc2(F.gelu(self.fc1(self.norm(x))))
        return x + branch


def _mlp_params(channels: int, expansion: int) -> int:
    return 2 * expansion * channels * channels + expansion * channels + 3 * channels


TRANSFORMER_BLUEPRINTS: tuple[BlueprintSpec, ...] = (
    BlueprintSpec(Topology.TRANSFORMER, Blueprint.NORM, TokenNormSeed, lambda c: 2 * c + 1),
    BlueprintSpec(Topology.TRANSFORMER, Blueprint.ATTENTION, CausalAttentionSeed, lambda c: 4 * c * c + 6 * c),
    BlueprintSpec(Topology.TRANSFORMER, Blueprint.LORA, lambda c: LoraSeed(c, LORA_RANK), lambda c: 2 * c * LORA_RANK),
    BlueprintSpec(
        Topology.TRANSFORMER,
        Blueprint.LORA_LARGE,
        lambda c: LoraSeed(c, LORA_LARGE_RANK),
        lambda c: 2 * c * LORA_LARGE_RANK,
    ),
    BlueprintSpec(
        Topology.TRANSFORMER,
        Blueprint.MLP_SMALL,
        lambda c: MlpSeed(c, MLP_SMALL_EXPANSION),
        lambda c: _mlp_params(c, MLP_SMALL_EXPANSION),
    ),
    BlueprintSpec(
        Topology.TRANSFORMER,
        Blueprint.MLP,
        lambda c: MlpSeed(c, MLP_EXPANSION),
        lambda c: _mlp_params(c, MLP_EXPANSION),
    ),
)
