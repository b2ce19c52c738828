"""``safe()`` turns anything scalar into a finite float and rejects what is not scalar."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
import torch

from esper.leyline import safe


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf, np.float32("nan"), torch.tensor(math.inf)])
def test_missing_or_non_finite_becomes_default(bad: object) -> None:
    assert safe(bad, default=-1.0) == -1.0


def test_finite_values_pass_and_are_clipped() -> None:
    assert safe(3) == 3.0
    assert safe(True) == 1.0
    assert safe(np.int64(7)) == 7.0
    assert safe(np.array(2.5)) == 2.5
    assert safe(torch.tensor([0.25])) == 0.25
    assert safe(1e9) == 1e6
    assert safe(-5.0, bound=2.0) == -2.0
    assert isinstance(safe(np.float32(1.5)), float)


def test_non_scalars_raise() -> None:
    with pytest.raises(TypeError, match="more than one element"):
        safe(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="more than one element"):
        safe(torch.ones(3))
    with pytest.raises(TypeError, match="got str"):
        safe("1.0")
    with pytest.raises(TypeError, match="got Decimal"):
        safe(Decimal(1))
    with pytest.raises(TypeError, match="real number"):
        safe(np.complex64(1 + 2j))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="default must be finite"):
        safe(1.0, default=math.nan)
    with pytest.raises(ValueError, match="bound"):
        safe(1.0, bound=0.0)
