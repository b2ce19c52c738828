"""A multi-layer LSTM written as per-step tensor ops, so ``torch.compile(fullgraph=True)`` can trace it.

Dynamo graph-breaks on ``nn.LSTM`` (torch 2.15: "Dynamo does not support RNN, GRU, or LSTM"); its only way
around is the process-global ``torch._dynamo.config.allow_rnn``, documented as experimental. Plain matmuls and
pointwise ops are what Dynamo supports fully, so the recurrence is written with them: per layer, one input
projection for the whole sequence, then one ``addmm`` plus gate math per step.

Each layer has a single bias (``nn.LSTM`` has two, ``bias_ih`` and ``bias_hh``, which it adds, so setting both
to 1 gives a forget bias of 2). Here the forget-gate slice of the one bias is the effective forget bias.
Gate order within the 4 * hidden rows: input, forget, cell, output (as in ``nn.LSTM``).

Eager and in full precision, a sequence longer than one step runs through ``torch.lstm`` (the fused kernel
behind ``nn.LSTM``, same weights, same math up to float rounding): PPO's 60-step update is 3x faster with it
(``tools/bench``, docs/performance.md). One step (acting), a trace under ``torch.compile`` and autocast keep the
per-step ops.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

#: Effective forget-gate bias at initialization: the cell keeps most of its memory from the first update.
FORGET_BIAS = 1.0


class LSTMLayer(nn.Module):
    """One recurrent layer. ``weight_ih`` ``[4H, input]``, ``weight_hh`` ``[H, 4H]`` (pre-transposed for
    ``addmm``), ``bias`` ``[4H]``."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_dim, input_dim))
        self.weight_hh = nn.Parameter(torch.empty(hidden_dim, 4 * hidden_dim))
        self.bias = nn.Parameter(torch.empty(4 * hidden_dim))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Orthogonal gate blocks (gain 1, the recurrence should neither grow nor shrink the state), zero bias
        except the forget gate."""
        size = self.hidden_dim
        for gate in range(4):
            rows = slice(gate * size, (gate + 1) * size)
            self.weight_ih[rows] = nn.init.orthogonal_(torch.empty(size, self.weight_ih.shape[1]))
            self.weight_hh[:, rows] = nn.init.orthogonal_(torch.empty(size, size)).T
        self.bias.zero_()
        self.bias[size : 2 * size].fill_(FORGET_BIAS)

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``inputs`` ``[batch, time, input]``, ``state`` ``([batch, H], [batch, H])`` ->
        outputs ``[batch, time, H]`` and the final ``(h, c)``."""
        if inputs.shape[1] > 1 and _fused_allowed(inputs):
            return self._fused(inputs, state)
        size = self.hidden_dim
        projected = functional.linear(inputs, self.weight_ih, self.bias)
        h, c = state
        outputs = []
        for step in range(inputs.shape[1]):
            gates = torch.addmm(projected[:, step], h, self.weight_hh)
            sigmoids = torch.sigmoid(gates)
            candidate = torch.tanh(gates[:, 2 * size : 3 * size])
            c = sigmoids[:, size : 2 * size] * c + sigmoids[:, :size] * candidate
            h = sigmoids[:, 3 * size :] * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h, c

    def _fused(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same layer as one ``torch.lstm`` call (``bias_hh`` is zero: the single bias is ``bias_ih``)."""
        weights = [self.weight_ih, self.weight_hh.t(), self.bias, torch.zeros_like(self.bias)]
        h, c = state
        outputs, h_n, c_n = torch.lstm(
            inputs, (h.unsqueeze(0), c.unsqueeze(0)), weights, True, 1, 0.0, self.training, False, True
        )
        return outputs, h_n[0], c_n[0]


def _fused_allowed(inputs: torch.Tensor) -> bool:
    """Dynamo cannot trace the fused kernel, and under autocast the per-step matmuls are what runs in low
    precision; both keep the per-step ops."""
    return not torch.compiler.is_compiling() and not torch.is_autocast_enabled(inputs.device.type)


class StepwiseLSTM(nn.Module):
    """Stacked ``LSTMLayer``s. Hidden state ``(h, c)``, each ``[num_layers, batch, hidden_dim]``."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            LSTMLayer(input_dim if index == 0 else hidden_dim, hidden_dim) for index in range(num_layers)
        )

    def forward(
        self, inputs: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``inputs`` ``[batch, time, input]`` -> outputs ``[batch, time, hidden]`` and the next hidden state."""
        h0, c0 = hidden
        final_h: list[torch.Tensor] = []
        final_c: list[torch.Tensor] = []
        outputs = inputs
        for index, layer in enumerate(self.layers):
            outputs, h, c = layer(outputs, (h0[index], c0[index]))
            final_h.append(h)
            final_c.append(c)
        return outputs, (torch.stack(final_h), torch.stack(final_c))
