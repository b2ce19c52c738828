"""Gradient health: the documented definition, and what the BLENDING gate does with it."""

from __future__ import annotations

import math

import pytest
import torch
from _kasmina_fixtures import (
    batch,
    digits_model,
    one_thread,  # noqa: F401  (autouse fixture)
    to_training,
    train_step,
)
from torch import nn

from esper.kasmina import gradient_health
from esper.kasmina.gradient_health import EXPLODING_NORM, SPIKE_NORM, VANISHING_NORM, GradientMonitor
from esper.leyline import FactoredAction


def test_health_is_one_inside_the_band() -> None:
    for norm in (VANISHING_NORM, 1e-3, 1.0, EXPLODING_NORM):
        summary = gradient_health(norm, norm)
        assert summary.health == 1.0 and not summary.exploding


def test_health_drops_half_per_decade_outside_the_band() -> None:
    assert gradient_health(VANISHING_NORM / 10, VANISHING_NORM / 10).health == pytest.approx(0.5)
    assert gradient_health(VANISHING_NORM / 1000, 1e-9).health == 0.0
    assert gradient_health(EXPLODING_NORM * 10, EXPLODING_NORM * 10).health == pytest.approx(0.5)
    assert gradient_health(1.0, SPIKE_NORM * 10).health == pytest.approx(0.5)


def test_exploding_vanishing_and_non_finite() -> None:
    assert gradient_health(EXPLODING_NORM * 2, EXPLODING_NORM * 2).exploding
    assert gradient_health(1.0, SPIKE_NORM * 2).exploding
    assert gradient_health(0.0, 0.0).health == 0.0
    for bad in (math.nan, math.inf):
        summary = gradient_health(bad, bad)
        assert summary.health == 0.0 and summary.exploding


def test_monitor_accumulates_steps_and_keeps_the_last_epoch() -> None:
    parameter = nn.Parameter(torch.zeros(4))
    monitor = GradientMonitor()
    assert monitor.summary() is None
    for value in (1.0, 3.0):  # per-step norms 2 and 6
        parameter.grad = torch.full((4,), value)
        monitor.observe([parameter])
    summary = monitor.summary()
    assert summary is not None
    assert summary.norm == pytest.approx(4.0)
    assert summary.peak == pytest.approx(6.0)
    monitor.close_epoch()
    assert monitor.summary() == summary
    parameter.grad = None
    monitor.observe([parameter])  # nothing to see
    assert monitor.summary() == summary


def test_the_blending_gate_refuses_exploding_and_unhealthy_seeds() -> None:
    model = digits_model()
    to_training(model, 0)
    model.tick()
    seed = model.slot("r0c0").require_seed()
    for p in seed.parameters():
        p.grad = torch.full_like(p, 1e3)
    model.observe_seed_gradients()
    refused = model.execute(FactoredAction.advance(0), 10.0)
    assert not refused.success and "gradient_not_exploding" in refused.reason
    model.tick()
    for p in seed.parameters():
        p.grad = torch.full_like(p, 1e-9)
    model.observe_seed_gradients()
    refused = model.execute(FactoredAction.advance(0), 10.0)
    assert not refused.success and "min_gradient_health" in refused.reason
    model.tick()
    train_step(model, *batch())
    assert model.execute(FactoredAction.advance(0), 10.0).success
