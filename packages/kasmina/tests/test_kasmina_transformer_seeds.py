"""Every transformer blueprint in the real transformer host: identity at birth, isolation while TRAINING, each
blend operator with the straight-through host gradient, causality at every slot, checkpoint round trips, and
counterfactual accuracy counted per token."""

from __future__ import annotations

import io

import pytest
import torch
from _kasmina_fixtures import (
    FAST_GATES,
    fake_measure,
    ok,
    one_thread,  # noqa: F401  (autouse fixture)
    perturb_seed,
)
from torch import Tensor, nn
from torch.nn import functional as F

from esper.kasmina import MorphogeneticModel, TransformerHostConfig, count_correct
from esper.leyline import (
    STYLE_TABLE,
    TEMPO_EPOCHS,
    TOPOLOGY_BLUEPRINTS,
    BlendOperator,
    BlendStyle,
    Blueprint,
    ConfigError,
    FactoredAction,
    SeedStage,
    Tempo,
    Topology,
)

TINY = TransformerHostConfig(vocab_size=13, context=12, width=16, heads=2, n_blocks=3, mlp_expansion=2)
SLOTS = range(TINY.n_blocks)
TRANSFORMER_SEEDS = sorted(b for b in TOPOLOGY_BLUEPRINTS[Topology.TRANSFORMER] if b is not Blueprint.NOOP)


def _model(seed: int = 0) -> MorphogeneticModel:
    return MorphogeneticModel.from_transformer_config(TINY, seed=seed, gate_config=FAST_GATES)


def _sequences(seed: int = 0, batch: int = 4) -> Tensor:
    """Token ids [batch, context + 1]: inputs are the first ``context``, targets the last ``context``."""
    return torch.randint(0, TINY.vocab_size, (batch, TINY.context + 1), generator=torch.Generator().manual_seed(seed))


def _loss(model: MorphogeneticModel, sequences: Tensor) -> Tensor:
    logits = model(sequences[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), sequences[:, 1:].flatten())


def _step(model: MorphogeneticModel, sequences: Tensor) -> None:
    """One backward with the gradient observation a trainer makes (no optimizer step)."""
    model.zero_grad(set_to_none=True)
    torch.autograd.backward(_loss(model, sequences))
    model.observe_seed_gradients()


def _to_training(model: MorphogeneticModel, slot: int, blueprint: Blueprint, style: BlendStyle) -> None:
    ok(model.execute(FactoredAction.germinate(slot, blueprint, style, Tempo.FAST), 10.0))
    ok(model.execute(FactoredAction.advance(slot), 11.0))


def _to_holding(model: MorphogeneticModel, slot: int, blueprint: Blueprint, style: BlendStyle) -> None:
    """TRAINING for one epoch with measured gradients, BLENDING over the FAST ramp, then HOLDING at alpha 1."""
    _to_training(model, slot, blueprint, style)
    _step(model, _sequences())
    model.tick()
    ok(model.execute(FactoredAction.advance(slot), 12.0))
    for _ in range(TEMPO_EPOCHS[Tempo.FAST]):
        model.tick()
    ok(model.execute(FactoredAction.advance(slot), 13.0))


@pytest.fixture
def inputs() -> Tensor:
    return _sequences(7)[:, :-1]


@pytest.mark.parametrize("style", list(BlendStyle))
@pytest.mark.parametrize("slot", SLOTS)
@pytest.mark.parametrize("blueprint", TRANSFORMER_SEEDS)
def test_a_newborn_seed_leaves_the_output_unchanged_in_every_live_stage(
    blueprint: Blueprint, slot: int, style: BlendStyle, inputs: Tensor
) -> None:
    model = _model()
    reference = model(inputs)
    ok(model.execute(FactoredAction.germinate(slot, blueprint, style, Tempo.FAST), 10.0))
    assert torch.equal(model(inputs), reference)  # GERMINATED: not wired
    ok(model.execute(FactoredAction.advance(slot), 11.0))
    assert torch.equal(model(inputs), reference)  # TRAINING: incubated
    _step(model, _sequences())
    model.tick()
    ok(model.execute(FactoredAction.advance(slot), 12.0))
    model.tick()
    seed = model.slot(f"r0c{slot}").require_seed()
    assert model.slot(f"r0c{slot}").stage is SeedStage.BLENDING and 0.0 < seed.alpha.value
    assert torch.equal(model(inputs), reference)  # blended at alpha > 0: still the identity


@pytest.mark.parametrize("slot", SLOTS)
@pytest.mark.parametrize("blueprint", TRANSFORMER_SEEDS)
def test_a_training_seed_changes_neither_host_outputs_nor_host_gradients(
    blueprint: Blueprint, slot: int, inputs: Tensor
) -> None:
    model = _model()
    sequences = _sequences(3)
    _step(model, sequences)
    bare_grads = [p.grad.clone() for p in model.host_parameters() if p.grad is not None]
    reference = model(inputs)
    _to_training(model, slot, blueprint, BlendStyle.LINEAR_ADD)
    perturb_seed(model, f"r0c{slot}")
    assert torch.equal(model(inputs), reference)
    _step(model, sequences)
    grads = [p.grad for p in model.host_parameters() if p.grad is not None]
    assert len(grads) == len(bare_grads)
    for with_seed, without in zip(grads, bare_grads, strict=True):
        assert torch.equal(with_seed, without)
    seed_grads = [p.grad for p in model.slot(f"r0c{slot}").require_seed().module.parameters()]
    assert any(g is not None and g.abs().sum().item() > 0 for g in seed_grads)


class _SiteTap:
    """Captures the host activation h at a slot's site (hook registered before the slot's) and the slot's output y
    (hook registered after it), both retaining their gradients."""

    def __init__(self, site: nn.Module) -> None:
        self.site = site
        self.h: Tensor | None = None
        self.y: Tensor | None = None
        self.handles = [site.register_forward_hook(self._before)]

    def _before(self, _module: nn.Module, _args: tuple[object, ...], output: Tensor) -> None:
        output.retain_grad()
        self.h = output

    def _after(self, _module: nn.Module, _args: tuple[object, ...], output: Tensor) -> None:
        output.retain_grad()
        self.y = output

    def tap_slot_output(self) -> None:
        self.handles.append(self.site.register_forward_hook(self._after))

    def captured(self) -> tuple[Tensor, Tensor]:
        assert self.h is not None and self.y is not None
        return self.h, self.y


def _expected_blend(operator: BlendOperator, h: Tensor, s: Tensor, alpha: float, gate: Tensor) -> Tensor:
    if operator is BlendOperator.ADD:
        return h + alpha * (s - h)
    if operator is BlendOperator.MULTIPLY:
        return h * (1.0 + alpha * torch.tanh(s - h))
    return h + (alpha * gate).clamp(0.0, 1.0) * (s - h)


def test_the_styles_cover_every_blend_operator() -> None:
    assert {operator for _curve, operator in STYLE_TABLE.values()} == set(BlendOperator)


@pytest.mark.parametrize("style", list(BlendStyle))
@pytest.mark.parametrize("blueprint", TRANSFORMER_SEEDS)
def test_every_operator_blends_and_passes_the_host_gradient_straight_through(
    blueprint: Blueprint, style: BlendStyle, inputs: Tensor
) -> None:
    model = _model()
    slot = 1
    tap = _SiteTap(model.host.get_submodule(f"blocks.{slot}"))
    reference = model(inputs).detach()
    _to_holding(model, slot, blueprint, style)
    perturb_seed(model, "r0c1", scale=0.3)
    tap.tap_slot_output()
    model.zero_grad(set_to_none=True)
    out = model(inputs)
    torch.autograd.backward(out.square().mean())
    h, y = tap.captured()
    seed = model.slot(f"r0c{slot}").require_seed()
    assert seed.operator is STYLE_TABLE[style][1] and seed.alpha.value == 1.0
    with torch.no_grad():
        expected = _expected_blend(seed.operator, h, seed.module(h), seed.alpha.value, seed.gate(h))
    torch.testing.assert_close(y, expected)
    assert not torch.allclose(out, reference)
    assert h.grad is not None and y.grad is not None
    assert torch.equal(h.grad, y.grad)  # the host below sees the slot as the identity
    assert all(p.grad is not None for p in seed.module.parameters())


def test_a_fossil_passes_the_full_gradient_through_its_seed(inputs: Tensor) -> None:
    model = _model()
    tap = _SiteTap(model.host.get_submodule("blocks.1"))
    _to_holding(model, 1, Blueprint.MLP, BlendStyle.LINEAR_ADD)
    fake_measure(model)
    ok(model.execute(FactoredAction.fossilize(1), 14.0))
    perturb_seed(model, "r0c1", scale=0.3)
    tap.tap_slot_output()
    torch.autograd.backward(model(inputs).square().mean())
    h, y = tap.captured()
    assert h.grad is not None and y.grad is not None
    assert not torch.allclose(h.grad, y.grad)  # the seed's Jacobian is in the host's gradient


@pytest.mark.parametrize("style", list(BlendStyle))
@pytest.mark.parametrize("slot", SLOTS)
@pytest.mark.parametrize("blueprint", TRANSFORMER_SEEDS)
def test_no_seed_sees_a_future_token(blueprint: Blueprint, slot: int, style: BlendStyle, inputs: Tensor) -> None:
    model = _model()
    _to_holding(model, slot, blueprint, style)
    perturb_seed(model, f"r0c{slot}", scale=0.5)
    changed = inputs.clone()
    changed[:, 8] = (changed[:, 8] + 1) % TINY.vocab_size
    before, after = model(inputs), model(changed)
    assert torch.equal(before[:, :8], after[:, :8])
    assert not torch.allclose(before[:, 8:], after[:, 8:])


def _grown() -> MorphogeneticModel:
    """r0c0 FOSSILIZED (attention), r0c1 HOLDING (lora, MULTIPLY), r0c2 TRAINING (mlp, GATE), seeds moved off
    their birth init."""
    model = _model(seed=1)
    _to_holding(model, 0, Blueprint.ATTENTION, BlendStyle.LINEAR_ADD)
    fake_measure(model)
    ok(model.execute(FactoredAction.fossilize(0), 14.0))
    _to_holding(model, 1, Blueprint.LORA, BlendStyle.LINEAR_MULTIPLY)
    _to_training(model, 2, Blueprint.MLP, BlendStyle.GATED_GATE)
    for slot in ("r0c0", "r0c1", "r0c2"):
        perturb_seed(model, slot, scale=0.2)
    _step(model, _sequences(2))
    return model


def _save_and_load(state: dict[str, object]) -> dict[str, object]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, object] = torch.load(buffer, weights_only=True)
    return loaded


def test_a_grown_transformer_round_trips_through_a_checkpoint(inputs: Tensor) -> None:
    model = _grown()
    assert model.stages() == (SeedStage.FOSSILIZED, SeedStage.HOLDING, SeedStage.TRAINING)
    fresh = _model(seed=99)
    fresh.load_lifecycle_state(_save_and_load(model.lifecycle_state()))
    assert fresh.slot_reports() == model.slot_reports()
    for mode in (False, True):
        model.train(mode)
        fresh.train(mode)
        assert torch.equal(fresh(inputs), model(inputs))
    for each in (model, fresh):  # in lockstep afterwards, germination generator included
        each.tick()
        ok(each.execute(FactoredAction.advance(2), 15.0))
        each.tick()
    assert fresh.slot_reports() == model.slot_reports()
    assert torch.equal(fresh(inputs), model(inputs))


def test_a_snapshot_rewinds_a_grown_transformer(inputs: Tensor) -> None:
    model = _grown()
    snapshot = model.snapshot()
    expected = model(inputs).detach()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    _step(model, _sequences(5))
    optimizer.step()
    model.tick()
    ok(model.execute(FactoredAction.advance(2), 16.0))
    assert model.stages()[2] is SeedStage.BLENDING
    assert not torch.equal(model(inputs), expected)
    model.restore(snapshot)
    assert model.stages() == (SeedStage.FOSSILIZED, SeedStage.HOLDING, SeedStage.TRAINING)
    assert torch.equal(model(inputs), expected)


def test_counterfactuals_count_every_next_token_on_the_language_model(inputs: Tensor) -> None:
    model = _model()
    _to_holding(model, 1, Blueprint.MLP, BlendStyle.LINEAR_ADD)
    perturb_seed(model, "r0c1", scale=0.5)
    model.eval()
    plan = model.counterfactual_plan()
    logits = model.forward_with_alphas(inputs, plan.alphas)
    assert logits.shape == (len(plan.rows), *inputs.shape, TINY.vocab_size)
    targets = _sequences(7)[:, 1:]
    correct = count_correct(logits, targets)
    expected = [int((logits[k].argmax(dim=-1) == targets).sum()) for k in range(len(plan.rows))]
    assert correct.tolist() == expected
    assert not torch.equal(logits[0], logits[1])  # the seed's removal changes the predictions
    with pytest.raises(ConfigError, match=r"targets \[B, \.\.\.\]"):
        count_correct(logits, targets[:, :-1])
