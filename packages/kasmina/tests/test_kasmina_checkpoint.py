"""Checkpoints round-trip a model with seeds in every stage; snapshots restore the whole model (live seeds and
BatchNorm buffers included); a refused load changes nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _kasmina_fixtures import (
    ALL_DIGITS_SLOTS,
    batch,
    digits_model,
    fake_measure,
    ok,
    one_thread,  # noqa: F401  (autouse fixture)
    perturb_seed,
    to_blending,
    to_fossil,
    to_holding,
    to_training,
    train_step,
)

from esper.kasmina import MorphogeneticModel
from esper.leyline import (
    EMBARGO_EPOCHS,
    MIN_PRUNE_AGE,
    RESET_EPOCHS,
    AlphaSpeed,
    BlendStyle,
    Blueprint,
    CheckpointError,
    FactoredAction,
    SeedStage,
    SlotConfig,
)


def _every_stage() -> MorphogeneticModel:
    """r0c0 FOSSILIZED, r0c1 HOLDING, r0c2 BLENDING mid-ramp, r1c0 EMBARGOED, r1c1 TRAINING (reached legally:
    seeds develop one at a time, so r1c0 is pruned from BLENDING after the others have germinated)."""
    model = digits_model(seed=1, slot_config=ALL_DIGITS_SLOTS)
    to_fossil(model, 0)
    to_holding(model, 1, Blueprint.ATTENTION, BlendStyle.LINEAR_MULTIPLY)
    fake_measure(model, 3.0)
    to_blending(model, 3, Blueprint.NORM)
    for _ in range(MIN_PRUNE_AGE - 1):
        model.tick()
    to_blending(model, 2, Blueprint.BOTTLENECK, BlendStyle.GATED_GATE)
    to_training(model, 4, Blueprint.DEPTHWISE)
    ok(model.execute(FactoredAction.prune(3), 20.0))
    model.tick()
    for slot in ("r0c0", "r0c1", "r0c2", "r1c1"):
        perturb_seed(model, slot, scale=0.2)
    train_step(model, *batch(2))
    return model


def _save_and_load(state: dict[str, object]) -> dict[str, object]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, object] = torch.load(buffer, weights_only=True)
    return loaded


def test_a_model_with_seeds_in_every_stage_round_trips() -> None:
    model = _every_stage()
    assert model.stages() == (
        SeedStage.FOSSILIZED,
        SeedStage.HOLDING,
        SeedStage.BLENDING,
        SeedStage.EMBARGOED,
        SeedStage.TRAINING,
    )
    fresh = digits_model(seed=99, slot_config=ALL_DIGITS_SLOTS)
    fresh.load_lifecycle_state(_save_and_load(model.lifecycle_state()))
    assert fresh.slot_reports() == model.slot_reports()
    x, _ = batch(7)
    for mode in (False, True):
        model.train(mode)
        fresh.train(mode)
        assert torch.equal(fresh(x), model(x))
    for _ in range(6):  # and they stay in lockstep, including the embargo and the ramp
        model.tick()
        fresh.tick()
    assert fresh.slot_reports() == model.slot_reports()
    for each in (model, fresh):  # the germination generator was restored too
        ok(each.execute(FactoredAction.prune(4), 0.0))  # the TRAINING seed would block the germination
        for _ in range(EMBARGO_EPOCHS + RESET_EPOCHS + 1):
            each.tick()
        ok(each.execute(FactoredAction.germinate(3, Blueprint.CONV_HEAVY), 0.0))
    for a, b in zip(model.seed_parameters("r1c0"), fresh.seed_parameters("r1c0"), strict=True):
        assert torch.equal(a, b)


def test_a_scheduled_prune_survives_a_checkpoint() -> None:
    model = digits_model()
    to_holding(model, 0)
    for _ in range(MIN_PRUNE_AGE):
        model.tick()
    ok(model.execute(FactoredAction.prune(0, AlphaSpeed.MEDIUM), 10.0))
    model.tick()
    fresh = digits_model(seed=5)
    fresh.load_lifecycle_state(_save_and_load(model.lifecycle_state()))
    flags = [p.requires_grad for p in fresh.seed_parameters("r0c0")]
    assert flags and not any(flags)
    for _ in range(4):
        fresh.tick()
    assert fresh.stages()[0] is SeedStage.EMBARGOED  # the ramp's last tick pruned it into the embargo


def test_mismatched_checkpoints_are_refused() -> None:
    state = digits_model().lifecycle_state()
    with pytest.raises(CheckpointError, match="do not match"):
        digits_model(slot_config=SlotConfig.from_ids(["r0c0"])).load_lifecycle_state(state)
    with pytest.raises(CheckpointError, match="format"):
        digits_model().load_lifecycle_state({**state, "format": "something else"})
    broken = {**state, "slots": [{"slot_id": "r0c0", "stage": 2, "dwell_remaining": 0, "seed": None}] * 3}
    with pytest.raises(CheckpointError, match="disagree"):
        digits_model().load_lifecycle_state(broken)


def test_a_snapshot_restores_the_model_exactly_live_seeds_included() -> None:
    model = _every_stage()
    model.eval()
    x, _ = batch(8)
    snapshot = model.snapshot()
    assert snapshot.fossils == 1
    expected_out = model(x)
    expected_state = _model_state(model)
    expected_stages = model.stages()
    # Training moves weights and BatchNorm statistics, ticks move the lifecycle, a new seed appears ...
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(EMBARGO_EPOCHS):  # long enough for the embargoed slot to move on to RESETTING
        train_step(model, *batch(8))
        optimizer.step()
        model.tick()
    assert model.stages() != expected_stages
    version = model.seed_parameter_version
    model.restore(snapshot)
    # ... and the restore brings back exactly the model that was snapshotted.
    assert model.stages() == expected_stages
    restored = _model_state(model)
    assert restored.keys() == expected_state.keys()
    assert all(torch.equal(restored[name], expected_state[name]) for name in expected_state)
    model.eval()
    assert torch.equal(model(x), expected_out)
    assert model.seed_parameter_version > version  # new seed objects: optimizers must be rebuilt


def test_a_fossil_grown_after_the_snapshot_is_rewound() -> None:
    model = digits_model()
    snapshot = model.snapshot()
    to_fossil(model, 1)
    model.restore(snapshot)
    assert model.stages()[1] is SeedStage.DORMANT
    host = digits_model()
    host.host.load_state_dict(model.host.state_dict())
    x, _ = batch()
    model.eval()
    host.eval()
    assert torch.equal(model(x), host(x))


def _model_state(model: MorphogeneticModel) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        # the classifier bias fits, the weight after it in the state does not: nothing may be written
        (lambda state: state["host"].update({"classifier.weight": torch.zeros(3, 3)}), "shape"),
        (lambda state: state["host"].pop("blocks.0.1.running_mean"), "missing"),
        (lambda state: state["host"].update({"classifier.bias": 0.5}), "not a tensor"),
        (lambda state: state.update({"generator": torch.zeros(3, dtype=torch.uint8)}), "unreadable"),
    ],
)
def test_a_refused_lifecycle_load_changes_nothing(spoil: Callable[[dict[str, Any]], object], message: str) -> None:
    state: dict[str, Any] = _every_stage().lifecycle_state()
    state["host"] = {
        name: torch.full_like(tensor, 7) if tensor.is_floating_point() else tensor
        for name, tensor in state["host"].items()
    }
    spoil(state)
    target = digits_model(seed=9, slot_config=ALL_DIGITS_SLOTS)
    before = _model_state(target)
    generator_before = target._generator.get_state()
    with pytest.raises(CheckpointError, match=message):
        target.load_lifecycle_state(state)
    after = _model_state(target)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert torch.equal(target._generator.get_state(), generator_before)
    assert target.stages() == (SeedStage.DORMANT,) * 5
