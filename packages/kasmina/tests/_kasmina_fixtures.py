"""Shared helpers of the kasmina tests: small models, batches, and drivers that walk a seed through its stages
with the public API only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from esper.kasmina import CNNHostConfig, ExecutionResult, GateConfig, MorphogeneticModel, RowKind
from esper.leyline import (
    TEMPO_EPOCHS,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    FactoredAction,
    SlotConfig,
    Tempo,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Autouse in every kasmina test module (each imports it): these tensors are tiny, and on two shared cores
    OpenMP hand-offs between threads cost far more than the arithmetic."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


#: One TRAINING epoch before BLENDING keeps the drivers short.
FAST_GATES = GateConfig(min_training_epochs=1)
DIGITS = CNNHostConfig.preset("digits_impaired")
#: Every slot the digits host has: after each of the 3 blocks and after each of the 2 pools.
ALL_DIGITS_SLOTS = SlotConfig.from_ids(["r0c0", "r0c1", "r0c2", "r1c0", "r1c1"])


def digits_model(
    seed: int = 0, gate_config: GateConfig = FAST_GATES, slot_config: SlotConfig | None = None
) -> MorphogeneticModel:
    return MorphogeneticModel.from_cnn_config(
        DIGITS, seed=seed, image_size=8, gate_config=gate_config, slot_config=slot_config
    )


def batch(seed: int = 0, size: int = 16) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (size,), generator=generator)
    return x, y


def train_step(model: MorphogeneticModel, x: Tensor, y: Tensor) -> None:
    """One backward with the gradient observation a trainer must make (no optimizer step)."""
    model.zero_grad(set_to_none=True)
    torch.autograd.backward(F.cross_entropy(model(x), y))
    model.observe_seed_gradients()


def ok(result: ExecutionResult) -> None:
    assert result.success, result.reason


def fake_measure(model: MorphogeneticModel, contribution: float = 10.0) -> None:
    """Record a counterfactual result in which every seed is worth ``contribution`` percentage points."""
    plan = model.counterfactual_plan()
    accuracies = [50.0] + [
        50.0 - contribution if row.kind is RowKind.ALPHA_ZERO else 50.0 + contribution for row in plan.rows[1:]
    ]
    model.record_counterfactuals(plan, accuracies)


def perturb_seed(model: MorphogeneticModel, slot: str, seed: int = 1, scale: float = 0.5) -> None:
    """Move a seed away from its identity init, so its output really differs from the host's."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.seed_parameters(slot):
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))


def to_training(
    model: MorphogeneticModel,
    slot: int,
    blueprint: Blueprint = Blueprint.CONV_LIGHT,
    style: BlendStyle = BlendStyle.LINEAR_ADD,
    tempo: Tempo = Tempo.FAST,
    target: AlphaTarget = AlphaTarget.FULL,
) -> None:
    ok(model.execute(FactoredAction.germinate(slot, blueprint, style, tempo, target), 10.0))
    ok(model.execute(FactoredAction.advance(slot), 11.0))


def to_blending(
    model: MorphogeneticModel,
    slot: int,
    blueprint: Blueprint = Blueprint.CONV_LIGHT,
    style: BlendStyle = BlendStyle.LINEAR_ADD,
    tempo: Tempo = Tempo.FAST,
    target: AlphaTarget = AlphaTarget.FULL,
) -> None:
    """Germinate, train one epoch (the FAST_GATES dwell) with measured gradients, advance to BLENDING."""
    to_training(model, slot, blueprint, style, tempo, target)
    train_step(model, *batch())
    model.tick()
    ok(model.execute(FactoredAction.advance(slot), 12.0))


def to_holding(
    model: MorphogeneticModel,
    slot: int,
    blueprint: Blueprint = Blueprint.CONV_LIGHT,
    style: BlendStyle = BlendStyle.LINEAR_ADD,
) -> None:
    to_blending(model, slot, blueprint, style, Tempo.FAST, AlphaTarget.FULL)
    for _ in range(TEMPO_EPOCHS[Tempo.FAST]):
        model.tick()
    ok(model.execute(FactoredAction.advance(slot), 13.0))


def to_fossil(model: MorphogeneticModel, slot: int, blueprint: Blueprint = Blueprint.CONV_LIGHT) -> None:
    to_holding(model, slot, blueprint)
    fake_measure(model)
    ok(model.execute(FactoredAction.fossilize(slot), 14.0))
