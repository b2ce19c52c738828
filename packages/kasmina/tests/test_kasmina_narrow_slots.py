"""Seeds on the narrowest slots of the digits host (one channel) keep a gradient: no blueprint can die.

Observed before: a conv_light seed on a 1-channel slot whose single GroupNorm bias drifted below every
normalised value after one SGD step had exactly zero gradient from then on, its gradient health went to 0 and
the BLENDING gate refused it forever. Such a seed is also reported as stalled (``gate_blocked_epochs``).
"""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import (
    ALL_DIGITS_SLOTS,
    batch,
    digits_model,
    one_thread,  # noqa: F401  (autouse fixture)
    to_training,
    train_step,
)
from torch import nn

from esper.kasmina import GateConfig, MorphogeneticModel
from esper.leyline import TOPOLOGY_BLUEPRINTS, Blueprint, FactoredAction, SeedStage, Topology

#: The 1-channel slots of the digits host: after block 0 (r0c0) and after its pool (r1c0).
NARROW_SLOTS = (0, 3)
CNN_BLUEPRINTS = [b for b in TOPOLOGY_BLUEPRINTS[Topology.CNN] if b is not Blueprint.NOOP]


def _push_into_the_dead_zone(model: MorphogeneticModel, index: int) -> None:
    """What one bad early step can do: every bias in the seed far below zero (norm weights stay as they are)."""
    seed = model.slot(ALL_DIGITS_SLOTS.slot_ids[index]).require_seed()
    with torch.no_grad():
        for layer in seed.module.modules():
            if isinstance(layer, nn.GroupNorm | nn.Linear) and layer.bias is not None:
                layer.bias.fill_(-5.0)


def _train_epochs(model: MorphogeneticModel, epochs: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(epochs):
        for step in range(4):
            train_step(model, *batch(100 * epoch + step, size=32))
            optimizer.step()
        model.tick()


@pytest.mark.parametrize("index", NARROW_SLOTS)
@pytest.mark.parametrize("blueprint", CNN_BLUEPRINTS, ids=[b.registry_name for b in CNN_BLUEPRINTS])
@pytest.mark.parametrize("planted", [False, True], ids=["fresh", "dead-zone"])
def test_every_cnn_seed_on_a_one_channel_slot_keeps_a_gradient(blueprint: Blueprint, index: int, planted: bool) -> None:
    model = digits_model(seed=3, slot_config=ALL_DIGITS_SLOTS)
    assert model.slot(ALL_DIGITS_SLOTS.slot_ids[index]).channels == 1
    to_training(model, index, blueprint)
    if planted:
        _push_into_the_dead_zone(model, index)
    _train_epochs(model, 5)
    report = model.slot_reports()[index].seed
    assert report is not None
    norm, health = report.metrics.gradient_norm, report.metrics.gradient_health
    assert norm is not None and norm > 0.0, (blueprint.registry_name, norm)
    assert health is not None and health > 0.0


def test_a_seed_the_blending_gate_keeps_refusing_is_reported_as_stalled() -> None:
    model = digits_model(gate_config=GateConfig(min_training_epochs=2))
    to_training(model, 0)
    reports = []
    for _ in range(5):  # nothing is trained: the gradient is never measured, so the gate can never pass
        model.tick()
        report = model.slot_reports()[0].seed
        assert report is not None
        reports.append(report.gate_blocked_epochs)
    assert reports == [0, 1, 2, 3, 4]  # the first epoch is the minimum dwell, not a stall
    # a checkpoint keeps the count
    fresh = digits_model(gate_config=GateConfig(min_training_epochs=2))
    fresh.load_lifecycle_state(model.lifecycle_state())
    fresh_report = fresh.slot_reports()[0].seed
    assert fresh_report is not None and fresh_report.gate_blocked_epochs == 4
    # once the seed has a healthy gradient the gate would pass: no longer stalled
    train_step(model, *batch())
    model.tick()
    healthy = model.slot_reports()[0].seed
    assert healthy is not None and healthy.gate_blocked_epochs == 0
    assert model.execute(FactoredAction.advance(0), 20.0).success
    assert model.stages()[0] is SeedStage.BLENDING
