"""The masked categorical seam: FP32 math, masked actions never drawn, exact-zero entropy for one choice, and the
named errors for an all-false mask row or a non-finite logit."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import HEAD_ORDER, ActionHead, InvalidStateMachineError, NonFiniteError
from esper.tamiyo.policy.distributions import (
    MASKED_LOGIT_VALUE,
    MaskedCategorical,
    log_noise,
    require_finite,
    require_sound,
)
from esper.tamiyo.policy.factored_heads import exponential_log, masked_log_softmax_row, pick


def _picks(distribution: MaskedCategorical, noise: np.ndarray, uniform: bool) -> np.ndarray:
    """``pick`` on every row of the distribution (row ``r``'s noise starts at ``r * width``)."""
    log_probs = np.ascontiguousarray(distribution.log_probs.numpy())
    mask = np.ascontiguousarray(distribution.mask.expand(log_probs.shape).numpy())
    width = log_probs.shape[-1]
    return np.array([pick(log_probs[r], mask[r], noise, uniform, r * width) for r in range(log_probs.shape[0])])


def _sample(distribution: MaskedCategorical, generator: torch.Generator) -> np.ndarray:
    """What the rollout does on the CPU: float64 uniforms, turned into noise inside ``pick``."""
    uniforms = torch.empty(distribution.log_probs.numel(), dtype=torch.float64).uniform_(generator=generator)
    return _picks(distribution, uniforms.numpy(), uniform=True)


def _mode(distribution: MaskedCategorical) -> np.ndarray:
    return _picks(distribution, np.empty(0, dtype=np.float64), uniform=False)


@st.composite
def logits_and_masks(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    rows, size = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    values = draw(st.lists(st.floats(-60.0, 60.0), min_size=rows * size, max_size=rows * size))
    bits = draw(st.lists(st.booleans(), min_size=rows * size, max_size=rows * size))
    mask = torch.tensor(bits).reshape(rows, size)
    mask[torch.arange(rows), draw(st.integers(0, size - 1))] = True  # at least one allowed action per row
    return torch.tensor(values).reshape(rows, size), mask


@settings(max_examples=60, deadline=None)
@given(logits_and_masks(), st.integers(0, 2**31 - 1))
def test_masked_actions_are_never_sampled_or_chosen(case: tuple[torch.Tensor, torch.Tensor], seed: int) -> None:
    logits, mask = case
    distribution = MaskedCategorical(logits, mask)
    generator = torch.Generator().manual_seed(seed)
    rows = np.arange(logits.shape[0])
    for _ in range(20):
        assert mask.numpy()[rows, _sample(distribution, generator)].all()
    assert mask.numpy()[rows, _mode(distribution)].all()
    assert torch.allclose(distribution.log_probs.exp().sum(dim=-1), torch.ones(logits.shape[0]), atol=1e-5)
    entropy = distribution.entropy()
    assert bool(((entropy >= -1e-6) & (entropy <= 1 + 1e-5)).all())


def test_single_valid_action_has_exactly_zero_entropy_and_log_prob() -> None:
    logits = torch.tensor([[3.0, -2.0, 0.5]])
    distribution = MaskedCategorical(logits, torch.tensor([[False, True, False]]))
    assert distribution.entropy().item() == 0.0
    assert distribution.log_prob(torch.tensor([1])).item() == 0.0


def test_entropy_is_normalized_by_the_number_of_valid_actions() -> None:
    mask = torch.tensor([[True, True, False, True], [True, True, True, True]])
    entropy = MaskedCategorical(torch.zeros(2, 4), mask).entropy()
    assert torch.allclose(entropy, torch.ones(2))
    peaked = MaskedCategorical(torch.tensor([[10.0, 0.0]]), torch.tensor([[True, True]])).entropy()
    assert 0.0 < peaked.item() < 0.01


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits_are_masked_in_fp32_without_nan(dtype: torch.dtype) -> None:
    logits = torch.tensor([[60000.0 if dtype is torch.float16 else 1e30, -5.0, 2.0]], dtype=dtype)
    mask = torch.tensor([[False, True, True]])
    distribution = MaskedCategorical(logits, mask)
    assert distribution.log_probs.dtype == torch.float32
    assert torch.isfinite(distribution.log_probs).all() and distribution.log_probs[0, 0] < -1e3
    assert _mode(distribution).tolist() == [2]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = MaskedCategorical(logits, mask)
        assert inside.log_probs.dtype == torch.float32 and inside.entropy().dtype == torch.float32


def test_masked_logit_value_is_finite_in_half_precision() -> None:
    for dtype in (torch.float16, torch.bfloat16):
        assert math.isfinite(torch.tensor(MASKED_LOGIT_VALUE, dtype=dtype).item())


def test_an_all_false_row_or_a_non_finite_logit_is_named() -> None:
    masks = np.ones((2, len(HEAD_ORDER), 3), dtype=np.bool_)
    require_sound(masks)
    masks[1, HEAD_ORDER.index(ActionHead.SLOT)] = False
    with pytest.raises(InvalidStateMachineError, match=r"all-false slot mask at rows \[\[1\]\]"):
        require_sound(masks)
    masks[0, HEAD_ORDER.index(ActionHead.OP)] = False
    with pytest.raises(InvalidStateMachineError, match=r"all-false op mask at rows \[\[0\]\]"):
        require_sound(masks)  # the op is named first: nothing else can be chosen without one
    require_finite(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(NonFiniteError, match="NaN or infinite logits"):
        require_finite(np.array([[0.0, np.nan], [0.0, 0.0]], dtype=np.float32))
    with pytest.raises(NonFiniteError, match="NaN or infinite logits"):
        require_finite(np.array([[0.0, -np.inf]], dtype=np.float32))


def test_sampling_is_reproducible_with_a_generator() -> None:
    distribution = MaskedCategorical(torch.zeros(64, 5), torch.ones(64, 5, dtype=torch.bool))
    first = _sample(distribution, torch.Generator().manual_seed(7))
    second = _sample(distribution, torch.Generator().manual_seed(7))
    assert np.array_equal(first, second) and len(set(first.tolist())) > 1


def test_sampling_follows_the_probabilities() -> None:
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1, 0.5]))
    mask = torch.tensor([True, True, True, False])
    distribution = MaskedCategorical(logits.expand(20000, 4), mask.expand(20000, 4))
    counts = np.bincount(_sample(distribution, torch.Generator().manual_seed(0)), minlength=4) / 20000
    np.testing.assert_allclose(counts, [0.7, 0.2, 0.1, 0.0], atol=0.015)


@numba.njit(cache=False)
def _exponential_logs(uniforms: np.ndarray, out: np.ndarray) -> None:
    for index in range(uniforms.shape[0]):
        out[index] = exponential_log(uniforms[index])


def test_the_cpu_noise_is_exponential_draws_value_for_value_and_leaves_the_generator_alike() -> None:
    """Pinned actions and results were recorded with ``exponential_``: the compiled noise from float64 uniforms
    is its draw exactly, logged in float64 (torch's float32 log may round the other way in the last bit), and
    drawing the uniforms moves the generator as ``exponential_`` does."""
    count = 10_000_000
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    uniforms = torch.empty(count, dtype=torch.float64).uniform_(generator=ours).numpy()
    noise = np.empty(count, dtype=np.float32)
    _exponential_logs(uniforms, noise)
    exponential = torch.empty(count).exponential_(generator=theirs)
    assert np.array_equal(noise, np.log(exponential.numpy().astype(np.float64)).astype(np.float32))
    assert np.abs(noise.view(np.int32) - exponential.log().numpy().view(np.int32)).max() <= 1
    assert torch.equal(torch.rand(4, generator=ours), torch.rand(4, generator=theirs))


def test_both_forms_of_the_noise_pick_the_same_actions() -> None:
    """An accelerator's rollout passes ``log_noise`` values, the CPU's uniforms: the same generator state gives
    the same draws either way (barring a tie within the last bit of a log, which these rows do not have)."""
    logits = torch.randn(4000, 8, generator=torch.Generator().manual_seed(3)) * 3
    mask = torch.rand(4000, 8, generator=torch.Generator().manual_seed(4)) > 0.3
    mask[:, 5] = True
    distribution = MaskedCategorical(logits, mask)
    uniform_draws = _sample(distribution, torch.Generator().manual_seed(9))
    noise = log_noise((logits.numel(),), torch.device("cpu"), torch.Generator().manual_seed(9))
    assert np.array_equal(uniform_draws, _picks(distribution, noise.numpy().astype(np.float64), uniform=False))


@settings(max_examples=60, deadline=None)
@given(logits_and_masks())
def test_the_compiled_row_log_softmax_is_masked_categoricals(case: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The rollout's row form reads its mask through a gather index (here: two rows side by side, read
    crosswise) and agrees with ``MaskedCategorical`` up to the last bits of ``exp``."""
    logits, mask = case
    reference = MaskedCategorical(logits, mask).log_probs.numpy()
    width = logits.shape[1]
    side_by_side = np.concatenate((np.zeros(width, dtype=np.bool_), np.ones(width, dtype=np.bool_)))
    for row in range(logits.shape[0]):
        side_by_side[:width] = mask[row].numpy()
        source = np.arange(width, dtype=np.intp)
        real = np.ones(width, dtype=np.bool_)
        out, allowed = np.empty(width, dtype=np.float32), np.empty(width, dtype=np.bool_)
        masked_log_softmax_row(logits[row].numpy(), source, real, side_by_side, out, allowed)
        assert np.array_equal(allowed, mask[row].numpy())
        np.testing.assert_allclose(out, reference[row], rtol=1e-6, atol=1e-6)
        real[0] = False  # a padding position: never allowed, whatever it reads
        source[0] = width  # reads an allowed column of the second row
        masked_log_softmax_row(logits[row].numpy(), source, real, side_by_side, out, allowed)
        assert not allowed[0]
