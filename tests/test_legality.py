"""One legality rule: over random reachable slot states of a real kasmina model, tamiyo's mask allows an action
exactly when kasmina executes it (a legal ADVANCE or FOSSILIZE may still be refused by its gate, and then only
by its gate). Illegal actions change nothing."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from esper.kasmina import CNNHostConfig, GateConfig, MorphogeneticModel, RowKind
from esper.leyline import (
    TOPOLOGY_BLUEPRINTS,
    AlphaCurve,
    AlphaSpeed,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    EnvObservation,
    FactoredAction,
    LifecycleOp,
    Tempo,
    Topology,
    refusal,
)
from esper.tamiyo import build_mask_arrays

GATED_OPS = (LifecycleOp.ADVANCE, LifecycleOp.FOSSILIZE)
CNN_SEEDS = [b for b in TOPOLOGY_BLUEPRINTS[Topology.CNN] if b is not Blueprint.NOOP]


def _model(seed: int) -> MorphogeneticModel:
    config = CNNHostConfig.preset("digits_impaired")
    return MorphogeneticModel.from_cnn_config(config, seed=seed, image_size=8, gate_config=GateConfig(1, 0.0))


def _observe(model: MorphogeneticModel, germinations_remaining: int) -> EnvObservation:
    return EnvObservation(
        epoch=1,
        max_epochs=60,
        val_loss=1.0,
        val_accuracy=50.0,
        slots=model.slot_reports(),
        germinations_remaining=germinations_remaining,
    )


def _action(op: LifecycleOp, slot: int, params: st.DataObject) -> FactoredAction:
    if op is LifecycleOp.WAIT:
        return FactoredAction.wait()
    if op is LifecycleOp.GERMINATE:
        return FactoredAction.germinate(
            slot,
            params.draw(st.sampled_from(CNN_SEEDS)),
            params.draw(st.sampled_from(BlendStyle)),
            params.draw(st.sampled_from(Tempo)),
            params.draw(st.sampled_from(AlphaTarget)),
        )
    if op is LifecycleOp.PRUNE:
        return FactoredAction.prune(slot, params.draw(st.sampled_from(AlphaSpeed)), AlphaCurve.COSINE)
    if op is LifecycleOp.SET_ALPHA_TARGET:
        return FactoredAction.set_alpha_target(
            slot,
            params.draw(st.sampled_from(AlphaTarget)),
            params.draw(st.sampled_from(AlphaSpeed)),
            AlphaCurve.LINEAR,
            params.draw(st.sampled_from(BlendStyle)),
        )
    return FactoredAction(op, slot)


def _train_and_measure(model: MorphogeneticModel, generator: torch.Generator, contribution: float) -> None:
    """One backward (so seeds have gradient health) and a counterfactual measurement worth ``contribution``."""
    x, y = torch.randn(8, 1, 8, 8, generator=generator), torch.randint(0, 10, (8,), generator=generator)
    model.zero_grad(set_to_none=True)
    torch.autograd.backward(F.cross_entropy(model(x), y))
    model.observe_seed_gradients()
    plan = model.counterfactual_plan()
    accuracies = [50.0] + [
        50.0 - contribution if row.kind is RowKind.ALPHA_ZERO else 50.0 + contribution for row in plan.rows[1:]
    ]
    model.record_counterfactuals(plan, accuracies)


def _check_every_op_and_slot(model: MorphogeneticModel, remaining: int, params: st.DataObject) -> None:
    masks = build_mask_arrays([_observe(model, remaining)], model.slot_config, model.topology)
    conditions = model.slot_conditions()
    for op in LifecycleOp:
        for slot in range(model.slot_config.num_slots):
            allowed = bool(masks.slot_by_op[0, op, slot])
            assert allowed == (refusal(op, slot, conditions, remaining) is None)
            if op is LifecycleOp.GERMINATE and remaining == 0:
                continue  # the seed cap belongs to the environment, not the model (tested in simic)
            trial = copy.deepcopy(model) if allowed else model  # a refused action changes nothing (asserted)
            before = trial.slot_reports()
            result = trial.execute(_action(op, slot, params), 50.0)
            executed_or_gated = result.success or (op in GATED_OPS and result.gate_check is not None)
            assert allowed == executed_or_gated, (op.name, slot, before, result)
            if not result.success:
                assert trial.slot_reports() == before


@pytest.mark.slow  # 20 rollouts of up to 30 epochs, each op and slot executed on a copy of the model
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**16), st.data())
def test_mask_allows_exactly_what_kasmina_executes(seed: int, data: st.DataObject) -> None:
    torch.set_num_threads(1)
    model = _model(seed)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(data.draw(st.integers(10, 30), label="steps")):
        remaining = data.draw(st.integers(0, 2), label="germinations_remaining")
        _check_every_op_and_slot(model, remaining, data)
        masks = build_mask_arrays([_observe(model, remaining)], model.slot_config, model.topology)
        legal = [
            (op, s)
            for op in LifecycleOp
            for s in range(model.slot_config.num_slots)
            if op is not LifecycleOp.WAIT and masks.slot_by_op[0, op, s]
        ]
        onward = [(op, s) for op, s in legal if op in GATED_OPS]  # deep states need the gated ops
        choice = data.draw(st.sampled_from(("onward", "legal", "any")), label="kind of action")
        if choice == "onward" and onward:
            op, slot = data.draw(st.sampled_from(onward))
        elif choice == "legal" and legal:
            op, slot = data.draw(st.sampled_from(legal))
        else:
            op = data.draw(st.sampled_from(LifecycleOp))
            slot = data.draw(st.integers(0, model.slot_config.num_slots - 1))
        if op is not LifecycleOp.GERMINATE or remaining > 0:
            model.execute(_action(op, slot, data), 50.0)
        _train_and_measure(model, generator, data.draw(st.sampled_from([-1.0, 2.0, 2.0])))
        model.tick()
