"""The ``safe()`` scalar guard: one NaN must never poison an observation or the running normalizer."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

#: Largest magnitude ``safe()`` lets through by default. Observation features are all scaled to
#: roughly [-1, 1] before this clip, so the bound only catches values that are already nonsense.
DEFAULT_SAFE_BOUND = 1e6


@runtime_checkable
class _HasItem(Protocol):
    """Anything scalar-like with ``.item()``: a one-element torch tensor, a numpy scalar or 0-d array."""

    def item(self) -> object: ...


def safe(value: object, default: float = 0.0, bound: float = DEFAULT_SAFE_BOUND) -> float:
    """Turn ``value`` into a finite Python float.

    ``None``, NaN and +/-inf become ``default``; anything finite is clipped to ``[-bound, bound]``.
    Accepts Python numbers and bools, numpy scalars and 0-d arrays, and one-element tensors.
    Anything else (strings, multi-element arrays) raises ``TypeError``: a wrong type is a bug, not missing data.
    """
    if not math.isfinite(default):
        raise ValueError(f"safe(): default must be finite, got {default!r}")
    if bound <= 0 or not math.isfinite(bound):
        raise ValueError(f"safe(): bound must be a positive finite number, got {bound!r}")
    if value is None:
        return default
    if isinstance(value, bool | int | float):
        number = float(value)
    elif isinstance(value, _HasItem) and not isinstance(value, str | bytes):
        try:
            item = value.item()
        except (ValueError, RuntimeError) as error:
            kind = type(value).__name__
            raise TypeError(f"safe() needs a scalar, got a {kind} with more than one element") from error
        if not isinstance(item, bool | int | float):
            raise TypeError(f"safe() needs a real number, got {type(item).__name__} from {type(value).__name__}")
        number = float(item)
    else:
        raise TypeError(f"safe() needs a number, None, or a one-element array/tensor; got {type(value).__name__}")
    if not math.isfinite(number):
        return default
    return max(-bound, min(bound, number))
