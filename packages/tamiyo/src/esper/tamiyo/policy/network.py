"""The factored recurrent actor-critic (docs/design/controllers.md): the module a policy bundle trains and compiles.

    raw features --RunningNormalizer--+
    blueprint indices --Embedding-----+--concat--> Linear -> LayerNorm -> ReLU  (trunk)
        --> StepwiseLSTM --> LayerNorm (+ trunk output if ``lstm_residual``)
        --> one MLP per head (logits, HEAD_ORDER) and one MLP for V(s), evaluated together (``HeadMLPs``)

LayerNorm placement: inside the trunk (before the ReLU) so the LSTM sees inputs of a stable scale, and on the
LSTM output so the heads do too over long sequences; the recurrent state itself is left unnormalized. The value
head reads the shared state only, never the action: the PPO baseline does not depend on the action it scores.

Initialization: orthogonal Linear weights with gain sqrt(2) (ReLU), zero biases; policy output layers gain 0.01
(near-uniform initial policy over the allowed actions, except the ``destructive_op_logit`` prior on the op head);
value output gain 0.1 (values are in normalized return units, so small initial values keep the first value loss
near the target variance); blueprint embedding N(0, 1) with the "no seed" row (``Blueprint.NOOP``) fixed at zero;
the LSTM as documented in ``lstm``.

``forward`` is the compiled hot path: pure tensor code (no host reads, no validation) over ``[batch, time]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import nn

from esper.leyline import HEAD_ORDER, ActionHead, Blueprint, ConfigError, LifecycleOp
from esper.tamiyo.encoding.feature_layout import NUM_BLUEPRINT_EMBEDDINGS
from esper.tamiyo.policy.head_layout import HeadLayout
from esper.tamiyo.policy.head_mlps import HeadMLPs
from esper.tamiyo.policy.lstm import StepwiseLSTM
from esper.tamiyo.policy.normalizer import RunningNormalizer

POLICY_OUTPUT_GAIN = 0.01
VALUE_OUTPUT_GAIN = 0.1
HIDDEN_GAIN = math.sqrt(2.0)
#: Ops that take growth back; see ``NetworkSizes.destructive_op_logit``.
DESTRUCTIVE_OPS = (LifecycleOp.PRUNE, LifecycleOp.SET_ALPHA_TARGET)


@dataclass(frozen=True, slots=True)
class NetworkSizes:
    """Configurable widths. The defaults suit the embedded CPU task (~65k parameters at 3 slots)."""

    embed_dim: int = 8
    trunk_dim: int = 64
    hidden_dim: int = 64
    num_layers: int = 1
    head_hidden_dim: int = 32
    lstm_residual: bool = False
    #: Initial logit of the ops that undo growth (PRUNE, SET_ALPHA_TARGET) relative to the others (0 = uniform).
    #: A uniform start prunes a live seed with probability ~1/3 per epoch, so almost no seed survives the ~10
    #: epochs it needs to contribute and PPO never sees growth pay off; -2 makes them ~7x less likely at first.
    #: It is a starting point only (the bias is trained); its ablation ran at commit 33442d9 (the digits results
    #: page of that commit).
    destructive_op_logit: int = -2

    def __post_init__(self) -> None:
        for name in ("embed_dim", "trunk_dim", "hidden_dim", "num_layers", "head_hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"network size {name} must be a positive integer, got {value!r}")
        if isinstance(self.destructive_op_logit, bool) or not isinstance(self.destructive_op_logit, int):
            raise ConfigError(f"destructive_op_logit must be an integer, got {self.destructive_op_logit!r}")
        if not isinstance(self.lstm_residual, bool):
            raise ConfigError(f"lstm_residual must be a bool, got {self.lstm_residual!r}")
        if self.lstm_residual and self.trunk_dim != self.hidden_dim:
            raise ConfigError(
                f"lstm_residual adds the trunk output to the LSTM output: needs trunk_dim == hidden_dim, "
                f"got {self.trunk_dim} and {self.hidden_dim}"
            )

    @classmethod
    def from_mapping(cls, sizes: Mapping[str, int]) -> NetworkSizes:
        """Build from keyword sizes; unknown names raise ``ConfigError`` listing the known ones."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(sizes) - known)
        if unknown:
            raise ConfigError(f"unknown network sizes {unknown}; known sizes are {sorted(known)}")
        widths = dict(sizes)
        residual = widths.pop("lstm_residual", False)
        if not isinstance(residual, bool):
            raise ConfigError(f"lstm_residual must be a bool, got {residual!r}")
        return cls(**widths, lstm_residual=residual)

    def as_dict(self) -> dict[str, int]:
        """JSON-serializable sizes (``lstm_residual`` is a bool, which is an int)."""
        return asdict(self)


class NetworkOutput(NamedTuple):
    """``logits``: ``[batch, time, H, width]``, every head padded to the widest (``HeadLayout``, HEAD_ORDER);
    ``values`` ``[batch, time]``; ``hidden``: the state after the last step, each ``[layers, batch, hidden]``."""

    logits: torch.Tensor
    values: torch.Tensor
    hidden: tuple[torch.Tensor, torch.Tensor]


class FeedForwardCore(nn.Module):
    """The memory ablation's stand-in for the LSTM: one Linear -> ReLU per step, and nothing carried between
    steps (its state is empty, ``[layers, batch, 0]``, passed through unchanged). The policy then decides from
    the current observation alone; the observation already carries the per-slot history a schedule needs (stage,
    epochs in stage, the last action and whether it succeeded)."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layer = nn.Linear(input_dim, hidden_dim)

    def forward(
        self, inputs: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return torch.relu(self.layer(inputs)), hidden


class FactoredRecurrentActorCritic(nn.Module):
    """Features + per-slot blueprint indices -> per-head logits and V(s), one LSTM step per time index (with
    ``recurrent=False``, a feed-forward layer in the LSTM's place: the same network without memory)."""

    def __init__(
        self,
        *,
        feature_dim: int,
        num_slots: int,
        head_sizes: Mapping[ActionHead, int],
        sizes: NetworkSizes,
        recurrent: bool = True,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.num_slots = num_slots
        self.sizes = sizes
        self.recurrent = recurrent
        self.layout = HeadLayout(head_sizes)
        self.normalizer = RunningNormalizer(feature_dim)
        self.blueprint_embedding = nn.Embedding(
            NUM_BLUEPRINT_EMBEDDINGS, sizes.embed_dim, padding_idx=int(Blueprint.NOOP)
        )
        self.trunk = nn.Sequential(
            nn.Linear(feature_dim + num_slots * sizes.embed_dim, sizes.trunk_dim),
            nn.LayerNorm(sizes.trunk_dim),
            nn.ReLU(),
        )
        self.lstm: StepwiseLSTM | FeedForwardCore = (
            StepwiseLSTM(sizes.trunk_dim, sizes.hidden_dim, sizes.num_layers)
            if recurrent
            else FeedForwardCore(sizes.trunk_dim, sizes.hidden_dim)
        )
        self.lstm_norm = nn.LayerNorm(sizes.hidden_dim)
        # One MLP per head in HEAD_ORDER, then the value MLP (last group, one output column).
        self.heads = HeadMLPs(sizes.hidden_dim, sizes.head_hidden_dim, (*self.layout.sizes, 1))
        self._initialize()

    @torch.no_grad()
    def _initialize(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=HIDDEN_GAIN)
                nn.init.zeros_(module.bias)
        output_gains = (POLICY_OUTPUT_GAIN,) * len(HEAD_ORDER) + (VALUE_OUTPUT_GAIN,)
        self.heads.initialize(HIDDEN_GAIN, output_gains)
        op_group = HEAD_ORDER.index(ActionHead.OP)
        for op in DESTRUCTIVE_OPS:
            self.heads.output_bias[op_group, int(op)] = float(self.sizes.destructive_op_logit)

    def initial_hidden(
        self, batch_size: int, *, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero state ``([layers, batch, hidden], [layers, batch, hidden])`` on the inputs' device and dtype."""
        shape = self.state_shape(batch_size)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def state_shape(self, batch_size: int) -> tuple[int, int, int]:
        """``[layers, batch, hidden]`` of each of ``(h, c)``; the feed-forward core's state is empty."""
        return (self.sizes.num_layers, batch_size, self.sizes.hidden_dim if self.recurrent else 0)

    def forward(
        self, features: torch.Tensor, blueprint_indices: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
    ) -> NetworkOutput:
        """``features`` ``[batch, time, feature_dim]`` raw float; ``blueprint_indices`` ``[batch, time, num_slots]``
        int64; ``hidden`` the state before the first step."""
        normalized = self.normalizer(features)
        embedded = self.blueprint_embedding(blueprint_indices).flatten(start_dim=-2)
        trunk = self.trunk(torch.cat((normalized, embedded), dim=-1))
        recurrent, next_hidden = self.lstm(trunk, hidden)
        shared = self.lstm_norm(recurrent)
        if self.sizes.lstm_residual:
            shared = shared + trunk
        outputs = self.heads(shared)  # [batch, time, H + 1, width]
        return NetworkOutput(outputs[..., : len(HEAD_ORDER), :], outputs[..., len(HEAD_ORDER), 0], next_hidden)
