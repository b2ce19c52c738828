"""The LSTM's two eager paths agree: a multi-step sequence (fused ``torch.lstm``) and the same sequence fed one
step at a time (per-step ops), in outputs, final state and gradients; one step and autocast keep the per-step
ops."""

from __future__ import annotations

import pytest
import torch

from esper.tamiyo.policy.lstm import LSTMLayer, StepwiseLSTM


def _one_step_at_a_time(
    lstm: StepwiseLSTM, inputs: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    outputs = []
    for step in range(inputs.shape[1]):
        out, hidden = lstm(inputs[:, step : step + 1], hidden)
        outputs.append(out)
    return torch.cat(outputs, dim=1), hidden


@pytest.mark.parametrize("layers", [1, 2])
def test_sequence_and_single_steps_agree_with_gradients(layers: int) -> None:
    torch.manual_seed(0)
    lstm = StepwiseLSTM(5, 7, layers)
    inputs = torch.randn(3, 9, 5)
    hidden = (torch.randn(layers, 3, 7), torch.randn(layers, 3, 7))
    whole, (h, c) = lstm(inputs, hidden)
    whole_grads = torch.autograd.grad((whole.square().sum() + h.sum() + c.sum()), list(lstm.parameters()))
    stepped, (h_step, c_step) = _one_step_at_a_time(lstm, inputs, hidden)
    stepped_grads = torch.autograd.grad((stepped.square().sum() + h_step.sum() + c_step.sum()), list(lstm.parameters()))
    torch.testing.assert_close(whole, stepped, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_step, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c, c_step, rtol=1e-5, atol=1e-6)
    for fused, per_step in zip(whole_grads, stepped_grads, strict=True):
        torch.testing.assert_close(fused, per_step, rtol=1e-4, atol=1e-5)


def test_fused_kernel_only_for_eager_full_precision_sequences(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    fused = LSTMLayer._fused

    def spy(
        self: LSTMLayer, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        calls.append(inputs.shape[1])
        return fused(self, inputs, state)

    monkeypatch.setattr(LSTMLayer, "_fused", spy)
    lstm = StepwiseLSTM(4, 6, 1)
    hidden = (torch.zeros(1, 2, 6), torch.zeros(1, 2, 6))
    lstm(torch.randn(2, 5, 4), hidden)
    lstm(torch.randn(2, 1, 4), hidden)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lstm(torch.randn(2, 5, 4), hidden)
    assert calls == [5]
