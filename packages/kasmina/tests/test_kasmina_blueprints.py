"""Blueprints: the parameter formulas of docs/design/hosts-and-blueprints.md, estimates, identity at birth, shapes
at any size, GroupNorm only, small channel counts, causality of transformer seeds, determinism, and a complete
registry."""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import one_thread  # noqa: F401  (autouse fixture)
from torch import nn

from esper.kasmina import BLUEPRINTS
from esper.kasmina.blueprints.cnn import group_count
from esper.leyline import TOPOLOGY_BLUEPRINTS, Blueprint, Topology

CHANNELS = (1, 2, 3, 4, 8, 16, 64)


def _b(c: int) -> int:
    return max(8, c // 4)


def _r(c: int) -> int:
    return max(1, c // 4)


#: The documented formulas (docs/design/hosts-and-blueprints.md), written out independently of the registry.
FORMULAS = {
    (Topology.CNN, "norm"): lambda c: 2 * c + 1,
    (Topology.CNN, "attention"): lambda c: 2 * c * _r(c) + _r(c) + c,
    (Topology.CNN, "depthwise"): lambda c: c * c + 11 * c,
    (Topology.CNN, "bottleneck"): lambda c: 2 * c * _b(c) + 9 * _b(c) ** 2 + 2 * c,
    (Topology.CNN, "conv_small"): lambda c: c * c + 2 * c,
    (Topology.CNN, "conv_light"): lambda c: 9 * c * c + 2 * c,
    (Topology.CNN, "conv_heavy"): lambda c: 18 * c * c + 4 * c,
    (Topology.TRANSFORMER, "norm"): lambda c: 2 * c + 1,
    (Topology.TRANSFORMER, "attention"): lambda c: 4 * c * c + 6 * c,
    (Topology.TRANSFORMER, "lora"): lambda c: 2 * c * 8,
    (Topology.TRANSFORMER, "lora_large"): lambda c: 2 * c * 32,
    (Topology.TRANSFORMER, "mlp_small"): lambda c: 2 * c * c + 4 * c,
    (Topology.TRANSFORMER, "mlp"): lambda c: 8 * c * c + 7 * c,
}
ENTRIES = sorted(FORMULAS, key=lambda k: (k[0].value, k[1]))
RESIDUAL = [k for k in ENTRIES if k != (Topology.CNN, "attention")]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _input(topology: Topology, channels: int, size: int = 5) -> torch.Tensor:
    shape = (3, channels, size, size + 2) if topology is Topology.CNN else (3, size, channels)
    return torch.randn(shape, generator=_gen(9))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_non_noop_blueprint_of_every_topology_is_registered() -> None:
    for topology, blueprints in TOPOLOGY_BLUEPRINTS.items():
        for blueprint in blueprints:
            if blueprint is not Blueprint.NOOP:
                assert (topology, blueprint.registry_name) in BLUEPRINTS
        assert set(BLUEPRINTS.names(topology)) == {b.registry_name for b in blueprints[1:]}


@pytest.mark.parametrize("key", ENTRIES, ids=lambda k: f"{k[0].value}-{k[1]}")
@pytest.mark.parametrize("channels", CHANNELS)
def test_parameter_counts_match_the_formulas_and_the_estimate(key: tuple[Topology, str], channels: int) -> None:
    topology, name = key
    real = _count(BLUEPRINTS.build(topology, name, channels, _gen()))
    assert real == FORMULAS[key](channels)
    estimate = BLUEPRINTS.param_estimate(topology, name, channels)
    assert abs(estimate - real) <= 0.25 * real


def test_squeeze_excite_is_about_half_c_squared_plus_c() -> None:
    real = _count(BLUEPRINTS.build(Topology.CNN, "attention", 256, _gen()))
    assert real == pytest.approx(256**2 / 2 + 256, rel=0.01)


@pytest.mark.parametrize("key", ENTRIES, ids=lambda k: f"{k[0].value}-{k[1]}")
@pytest.mark.parametrize("channels", (1, 2, 4, 12))
def test_identity_at_birth_and_shape_preserving(key: tuple[Topology, str], channels: int) -> None:
    topology, name = key
    module = BLUEPRINTS.build(topology, name, channels, _gen())
    for size in (1, 2, 7):
        x = _input(topology, channels, size)
        y = module(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("key", ENTRIES, ids=lambda k: f"{k[0].value}-{k[1]}")
def test_zero_initialised_seeds_still_receive_gradient(key: tuple[Topology, str]) -> None:
    topology, name = key
    module = BLUEPRINTS.build(topology, name, 4, _gen())
    target = torch.randn(_input(topology, 4).shape, generator=_gen(2))
    torch.autograd.backward(((module(_input(topology, 4)) - target) ** 2).sum())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_cnn_seeds_use_groupnorm_with_groups_that_divide_c() -> None:
    for name in BLUEPRINTS.names(Topology.CNN):
        for channels in CHANNELS:
            module = BLUEPRINTS.build(Topology.CNN, name, channels, _gen())
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
            for norm in (m for m in module.modules() if isinstance(m, nn.GroupNorm)):
                assert norm.num_channels % norm.num_groups == 0
    assert [group_count(c) for c in (1, 2, 4, 8, 16, 32, 64, 12)] == [1, 1, 1, 2, 4, 8, 8, 3]


@pytest.mark.parametrize("name", ["attention", "norm", "lora", "mlp"])
def test_transformer_seeds_never_look_at_future_tokens(name: str) -> None:
    module = BLUEPRINTS.build(Topology.TRANSFORMER, name, 16, _gen())
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=_gen(4)))
    x = torch.randn(2, 9, 16, generator=_gen(5))
    changed = x.clone()
    changed[:, 6:] += 5.0
    before, after = module(x), module(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_same_generator_seed_gives_identical_seeds_and_no_global_draw() -> None:
    state = torch.get_rng_state()
    first = BLUEPRINTS.build(Topology.CNN, "conv_heavy", 4, _gen(11))
    second = BLUEPRINTS.build(Topology.CNN, "conv_heavy", 4, _gen(11))
    other = BLUEPRINTS.build(Topology.CNN, "conv_heavy", 4, _gen(12))
    assert torch.equal(torch.get_rng_state(), state)
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        if a.abs().sum() > 0:
            assert not torch.equal(a, c)


def test_unknown_blueprints_and_bad_channels_are_config_errors() -> None:
    with pytest.raises(ValueError, match="registered: norm"):
        BLUEPRINTS.spec(Topology.CNN, "lora")
    with pytest.raises(ValueError, match="at least one channel"):
        BLUEPRINTS.build(Topology.CNN, "norm", 0, _gen())
