"""``identical``: the strict equality loaders use to compare saved settings with live ones."""

from __future__ import annotations

import pytest

from esper.leyline import identical


class _NumberLike:
    """Compares equal to anything, as a one-element tensor does to a number."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    ("saved", "live"),
    [
        (1, 1),
        ("lstm", "lstm"),
        ((0.9, 0.999), (0.9, 0.999)),
        ({"sizes": {"hidden_dim": 64, "lstm_residual": True}}, {"sizes": {"hidden_dim": 64, "lstm_residual": True}}),
        ([1, [2, 3]], [1, [2, 3]]),
        (None, None),
    ],
)
def test_equal_values_of_the_same_types_are_identical(saved: object, live: object) -> None:
    assert identical(saved, live)


@pytest.mark.parametrize(
    ("saved", "live"),
    [
        (_NumberLike(), 1),  # passes == but is not a number
        (1.0, 1),
        (True, 1),
        ([0.9, 0.999], (0.9, 0.999)),
        ({"hidden_dim": 64}, {"hidden_dim": 64, "lstm_residual": True}),  # a key left out
        ({"hidden_dim": 64.0}, {"hidden_dim": 64}),
        ([1, [2, 3]], [1, [2, 4]]),
        ([1, 2], [1, 2, 3]),
    ],
)
def test_a_different_type_or_value_anywhere_is_not_identical(saved: object, live: object) -> None:
    assert not identical(saved, live)
    assert not identical(live, saved)
