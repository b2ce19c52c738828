"""Blending: the TRAINING incubator leaves the host untouched, a live blended seed passes the host gradient
straight through its slot (never starving the host below it), gradient isolation is lifted only for fossils,
the gate and MULTIPLY start where they should."""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import (
    batch,
    digits_model,
    fake_measure,
    ok,
    one_thread,  # noqa: F401  (autouse fixture)
    perturb_seed,
    to_blending,
    to_holding,
    to_training,
)
from torch import Tensor
from torch.nn import functional as F

from esper.kasmina import BlendGate, MorphogeneticModel, blend, pass_host_gradient
from esper.leyline import (
    TOPOLOGY_BLUEPRINTS,
    AlphaTarget,
    BlendOperator,
    BlendStyle,
    Blueprint,
    FactoredAction,
    SeedStage,
    Tempo,
    Topology,
)

STYLE_OF = {
    BlendOperator.ADD: BlendStyle.LINEAR_ADD,
    BlendOperator.MULTIPLY: BlendStyle.LINEAR_MULTIPLY,
    BlendOperator.GATE: BlendStyle.GATED_GATE,
}


def _host_grads(model: MorphogeneticModel, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(x)
    torch.autograd.backward(F.cross_entropy(out, y))
    grads = {}
    for name, p in model.host.named_parameters():
        assert p.grad is not None
        grads[name] = p.grad.clone()
    return out.detach(), grads


@pytest.mark.parametrize("operator", list(BlendOperator))
def test_training_incubator_leaves_host_output_and_gradients_bit_identical(operator: BlendOperator) -> None:
    plain, seeded = digits_model(seed=3), digits_model(seed=3)
    to_training(seeded, 1, Blueprint.CONV_LIGHT, STYLE_OF[operator])
    perturb_seed(seeded, "r0c1")  # a seed that really differs from the identity
    x, y = batch()
    out_plain, grads_plain = _host_grads(plain, x, y)
    out_seeded, grads_seeded = _host_grads(seeded, x, y)
    assert torch.equal(out_plain, out_seeded)
    for name, grad in grads_plain.items():
        assert torch.equal(grad, grads_seeded[name]), name
    # ... while the seed itself learns from the full gradient.
    seed_grads = [p.grad for p in seeded.slot("r0c1").require_seed().module.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in seed_grads)


def test_blending_passes_the_host_gradient_below_the_slot_straight_through() -> None:
    plain, seeded = digits_model(seed=4), digits_model(seed=4)
    to_blending(seeded, 1, Blueprint.CONV_LIGHT, BlendStyle.LINEAR_ADD, Tempo.FAST)
    seeded.tick()
    alpha = seeded.slot("r0c1").require_seed().alpha.value
    assert 0.0 < alpha < 1.0
    # Identical host weights (the drivers trained nothing) and a seed that is still the identity: y == h, and
    # the host gets exactly the gradient it gets without the seed (not (1 - alpha) of it).
    x, y = batch(1)
    out_plain, grads_plain = _host_grads(plain, x, y)
    out_seeded, grads_seeded = _host_grads(seeded, x, y)
    assert torch.equal(out_plain, out_seeded)
    # (A conv right before a BatchNorm has a mathematically zero weight gradient here: atol covers its noise.)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_seeded[name], grad, rtol=1e-5, atol=1e-6)
    assert any(g.abs().max() > 1e-3 for n, g in grads_plain.items() if n.startswith("blocks.0."))


def _saturate_gate(model: MorphogeneticModel, slot: str) -> None:
    """Make the GATE operator's a_eff clamp at 1 everywhere (gate(h) = 1 + tanh(10) > 1)."""
    proj = model.slot(slot).require_seed().gate.proj
    assert proj.bias is not None
    with torch.no_grad():
        proj.bias.fill_(10.0)


@pytest.mark.parametrize("operator", list(BlendOperator))
def test_the_host_below_a_holding_seed_at_full_alpha_keeps_learning(operator: BlendOperator) -> None:
    model = digits_model(seed=5)
    to_holding(model, 1, Blueprint.CONV_LIGHT, STYLE_OF[operator])
    assert model.slot("r0c1").require_seed().alpha.value == 1.0
    perturb_seed(model, "r0c1")
    if operator is BlendOperator.GATE:
        _saturate_gate(model, "r0c1")
    x, y = batch(2)
    _, grads = _host_grads(model, x, y)
    below = {n: g for n, g in grads.items() if n.startswith(("blocks.0.", "blocks.1."))}
    assert all(torch.isfinite(g).all() for g in below.values())
    assert all(g.abs().sum() > 0 for n, g in below.items() if n.endswith("1.weight")), below  # BatchNorm scales
    # the slot's value is the blend itself: the straight-through term adds exactly zero
    seed = model.slot("r0c1").require_seed()
    h = torch.randn(4, 2, 4, 4)
    s = seed.module(h)
    expected = blend(operator, h, s, 1.0, seed.gate)
    assert torch.equal(model.slot("r0c1")(h), expected)


def test_isolation_is_lifted_once_fossilized() -> None:
    model = digits_model(seed=5)
    to_holding(model, 1)
    perturb_seed(model, "r0c1")
    x, y = batch(2)
    _, holding = _host_grads(model, x, y)
    # While the seed is on probation the host gradient bypasses it (the slot acts as the identity) ...
    assert all(holding[n].abs().sum() > 0 for n in holding if n.startswith("blocks.0.1"))
    fake_measure(model)
    ok(model.execute(FactoredAction.fossilize(1), 50.0))
    _, fossil = _host_grads(model, x, y)
    # ... and once the seed is part of the host the full gradient flows through it, so the host's gradient
    # below the slot changes.
    assert any(not torch.allclose(fossil[n], holding[n]) for n in fossil if n.startswith(("blocks.0.", "blocks.1.")))


@pytest.mark.parametrize("blueprint", TOPOLOGY_BLUEPRINTS[Topology.CNN][1:])
def test_multiply_starts_as_the_identity_for_every_blueprint(blueprint: Blueprint) -> None:
    plain, seeded = digits_model(seed=6), digits_model(seed=6)
    to_blending(seeded, 1, blueprint, BlendStyle.LINEAR_MULTIPLY, Tempo.FAST, AlphaTarget.FULL)
    seeded.slot("r0c1").require_seed().alpha.value = 1.0
    x, _ = batch(3)  # train mode on both: batch statistics, so the driver's training step does not matter
    torch.testing.assert_close(seeded(x), plain(x), rtol=0, atol=1e-6)


def test_the_gate_starts_at_one_so_a_eff_equals_alpha() -> None:
    gate = BlendGate.create(3, Topology.CNN)
    h = torch.randn(4, 3, 5, 5)
    s = torch.randn(4, 3, 5, 5)
    assert torch.equal(gate(h), torch.ones(4, 1, 5, 5))
    torch.testing.assert_close(blend(BlendOperator.GATE, h, s, 0.3, gate), blend(BlendOperator.ADD, h, s, 0.3, gate))


def test_gate_is_per_token_for_transformers() -> None:
    gate = BlendGate.create(6, Topology.TRANSFORMER)
    assert gate(torch.randn(2, 7, 6)).shape == (2, 7, 1)


def test_blend_formulas() -> None:
    h, s = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    gate = BlendGate.create(3, Topology.CNN)
    torch.testing.assert_close(blend(BlendOperator.ADD, h, s, 0.25, gate), h + 0.25 * (s - h))
    torch.testing.assert_close(blend(BlendOperator.MULTIPLY, h, s, 0.25, gate), h * (1 + 0.25 * torch.tanh(s - h)))
    per_sample = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    torch.testing.assert_close(blend(BlendOperator.ADD, h, s, per_sample, gate), torch.stack((h[0], s[1])))


def test_pass_host_gradient_keeps_the_value_and_gives_the_host_the_identity_gradient() -> None:
    h = torch.randn(2, 3, 4, 4, requires_grad=True)
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    gate = BlendGate.create(3, Topology.CNN)
    y = blend(BlendOperator.ADD, h.detach(), s, 1.0, gate)
    out = pass_host_gradient(h, y)
    assert torch.equal(out, y)
    weights = torch.randn(2, 3, 4, 4)
    torch.autograd.backward((out * weights).sum())
    assert h.grad is not None and s.grad is not None
    assert torch.equal(h.grad, weights)
    assert torch.equal(s.grad, weights)


def test_set_alpha_target_reselects_the_operator() -> None:
    model = digits_model(seed=7)
    to_holding(model, 0)
    action = FactoredAction.set_alpha_target(0, AlphaTarget.FULL, style=BlendStyle.GATED_GATE)
    ok(model.execute(action, 40.0))
    seed = model.slot("r0c0").require_seed()
    assert seed.operator is BlendOperator.GATE
    assert model.slot("r0c0").stage is SeedStage.HOLDING
