"""The transformer host: a small decoder-only (causal) language model, and its presets.

Token embedding plus learned positions, ``n_blocks`` pre-norm blocks (``x + attn(LN(x))`` with causal
multi-head self-attention, then ``x + mlp(LN(x))`` with a GELU MLP; a host with ``heads = 0`` has no attention,
so nothing in it mixes tokens), a final LayerNorm and a linear LM head:
token ids [B, T] (T <= context) -> next-token logits [B, T, vocab_size]. Slot ``r0c{i}`` sits after block i
(module ``blocks.{i}``, whose output is the residual stream [B, T, width]), exactly as on the CNN hosts; there is
no row 1. No part of the host looks at a later token, so a slot's input at position t depends on tokens <= t.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from esper.kasmina.initialization import build_on_meta, init_affine_
from esper.leyline import ConfigError, SlotConfig

#: Standard deviation of the token and position embeddings at initialisation (GPT-2's choice).
EMBEDDING_INIT_STD = 0.02


@dataclass(frozen=True, slots=True)
class TransformerHostConfig:
    vocab_size: int
    context: int
    width: int
    heads: int
    n_blocks: int
    mlp_expansion: int

    def __post_init__(self) -> None:
        positive = {
            "context": self.context,
            "width": self.width,
            "n_blocks": self.n_blocks,
            "mlp_expansion": self.mlp_expansion,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"TransformerHostConfig.{name} must be >= 1, got {value}")
        if self.heads < 0:
            raise ConfigError(f"TransformerHostConfig.heads must be >= 0 (0: no attention), got {self.heads}")
        if self.vocab_size < 2:
            raise ConfigError(f"TransformerHostConfig.vocab_size must be >= 2, got {self.vocab_size}")
        if self.heads and self.width % self.heads != 0:
            raise ConfigError(f"TransformerHostConfig.width ({self.width}) must be divisible by heads ({self.heads})")

    @classmethod
    def preset(cls, name: str) -> TransformerHostConfig:
        try:
            return TRANSFORMER_HOST_PRESETS[name]
        except KeyError:
            known = ", ".join(TRANSFORMER_HOST_PRESETS)
            raise ConfigError(f"unknown transformer host preset {name!r}; known: {known}") from None

    def slot_sites(self, slot_config: SlotConfig) -> dict[str, str]:
        """Module path after which each slot sits: ``blocks.{i}`` for slot ``r0c{i}``."""
        sites: dict[str, str] = {}
        for slot in slot_config.slot_ids:
            if slot.row != 0 or slot.col >= self.n_blocks:
                raise ConfigError(
                    f"slot {slot} does not exist in a transformer host with {self.n_blocks} blocks "
                    f"(r0c0..r0c{self.n_blocks - 1})"
                )
            sites[str(slot)] = f"blocks.{slot.col}"
        return sites

    def example_input(self) -> Tensor:
        """One sequence of ``context`` zero tokens, for the channel probe."""
        return torch.zeros(1, self.context, dtype=torch.int64)


#: Byte-level presets (vocabulary 256, context 64). ``bytes_small`` is a small but complete host.
#: ``bytes_impaired`` is deliberately weak, as the digits CNN host is (its kernel-1 convolutions never mix
#: neighbouring pixels): no attention at all, so the host predicts each byte from the one before it and its
#: position, and only a grown seed (an attention seed) can let it read further back; its 16-wide stream and an MLP
#: no wider than the stream leave room for what grows (docs/results/pydoc-bytes.md). A width-8 stream was tried
#: first: nothing added to it helped.
TRANSFORMER_HOST_PRESETS: Mapping[str, TransformerHostConfig] = MappingProxyType(
    {
        "bytes_small": TransformerHostConfig(256, 64, width=32, heads=2, n_blocks=2, mlp_expansion=2),
        "bytes_impaired": TransformerHostConfig(256, 64, width=16, heads=0, n_blocks=2, mlp_expansion=1),
    }
)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions <= t only."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out: Tensor = self.out(attended.transpose(1, 2).reshape(batch, tokens, width))
        return out


class TransformerBlock(nn.Module):
    """A pre-norm block: ``x + attn(LN(x))`` (absent when the config has 0 heads), then ``x + mlp(LN(x))``."""

    def __init__(self, config: TransformerHostConfig) -> None:
        super().__init__()
        hidden = config.mlp_expansion * config.width
        self.attn_norm: nn.LayerNorm | None = None
        self.attn: CausalSelfAttention | None = None
        if config.heads:
            self.attn_norm = nn.LayerNorm(config.width)
            self.attn = CausalSelfAttention(config.width, config.heads)
        self.mlp_norm = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(nn.Linear(config.width, hidden), nn.GELU(), nn.Linear(hidden, config.width))

    def forward(self, x: Tensor) -> Tensor:
        if self.attn is not None and self.attn_norm is not None:
            x = x + self.attn(self.attn_norm(x))
        out: Tensor = x + self.mlp(self.mlp_norm(x))
        return out


class TransformerHost(nn.Module):
    """A decoder-only language model: token ids [B, T] -> next-token logits [B, T, vocab_size]."""

    def __init__(self, config: TransformerHostConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Embedding(config.context, config.width)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_blocks))
        self.final_norm = nn.LayerNorm(config.width)
        self.lm_head = nn.Linear(config.width, config.vocab_size)

    @classmethod
    def create(cls, config: TransformerHostConfig, generator: torch.Generator) -> TransformerHost:
        """A host with PyTorch's default linear and LayerNorm init and N(0, 0.02) embeddings, every draw from
        ``generator``."""
        host = build_on_meta(lambda: cls(config))
        with torch.no_grad():
            host.token_embedding.weight.normal_(0.0, EMBEDDING_INIT_STD, generator=generator)
            host.position_embedding.weight.normal_(0.0, EMBEDDING_INIT_STD, generator=generator)
        init_affine_(host, generator)
        return host

    def forward(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[-1]
        if length > self.config.context:
            raise ConfigError(f"sequence of {length} tokens is longer than the host's context {self.config.context}")
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        logits: Tensor = self.lm_head(self.final_norm(x))
        return logits
