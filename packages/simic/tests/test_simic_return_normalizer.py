"""The running return statistics equal the statistics of everything seen, batch by batch."""

from __future__ import annotations

import math

import torch

from esper.simic.ppo.return_normalizer import ReturnNormalizer


def test_merged_moments_equal_global_moments() -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, generator=generator) * 3 + 1 for n in (5, 17, 40)]
    normalizer = ReturnNormalizer()
    for batch in batches:
        normalizer.update(batch)
    everything = torch.cat(batches).double()
    assert math.isclose(normalizer.mean, float(everything.mean()), rel_tol=1e-9)
    assert math.isclose(normalizer.var, float(everything.var(unbiased=False)), rel_tol=1e-9)
    assert normalizer.count == 62


def test_non_finite_returns_are_ignored_and_round_trip() -> None:
    normalizer = ReturnNormalizer()
    normalizer.update(torch.tensor([1.0, float("nan"), 3.0, float("inf")]))
    assert normalizer.mean == 2.0 and normalizer.count == 2
    values = torch.tensor([0.5, 2.0])
    torch.testing.assert_close(normalizer.denormalize(normalizer.normalize(values)), values)
    copy = ReturnNormalizer.from_state_dict(normalizer.state_dict())
    assert copy == normalizer


def test_std_never_collapses() -> None:
    normalizer = ReturnNormalizer()
    normalizer.update(torch.ones(10))
    assert normalizer.std == normalizer.eps
    assert torch.isfinite(normalizer.normalize(torch.tensor([1.0, 2.0]))).all()
