"""Alpha controller: curve values from docs/design/blending.md, ramps that never overshoot, snap to target,
HOLD-only retarget."""

from __future__ import annotations

import pytest
from _kasmina_fixtures import one_thread  # noqa: F401  (autouse fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.kasmina import AlphaController, curve_value
from esper.kasmina.alpha import ALPHA_TARGET_VALUES, CURVE_STEEPNESS
from esper.leyline import AlphaCurve, AlphaMode, AlphaTarget, InvalidStateMachineError


def _ramp(curve: AlphaCurve, steps: int, start: float = 0.0, target: float = 1.0) -> list[float]:
    controller = AlphaController()
    controller.value = start
    controller.retarget(target, steps, curve)
    values = []
    while controller.ramping:
        controller.step()
        values.append(controller.value)
    return values


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        (AlphaCurve.LINEAR, [0.2, 0.4, 0.6, 0.8, 1.0]),
        (AlphaCurve.COSINE, [0.0955, 0.3455, 0.6545, 0.9045, 1.0]),
        (AlphaCurve.SIGMOID, [0.0242, 0.2301, 0.7699, 0.9758, 1.0]),
    ],
)
def test_five_step_ramps_match_the_spec_examples(curve: AlphaCurve, expected: list[float]) -> None:
    assert _ramp(curve, 5) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("curve", list(AlphaCurve))
def test_every_curve_maps_0_to_0_and_1_to_1_monotonically(curve: AlphaCurve) -> None:
    points = [curve_value(curve, i / 20) for i in range(21)]
    assert points[0] == pytest.approx(0.0, abs=1e-12)
    assert points[-1] == pytest.approx(1.0, abs=1e-12)
    assert points == sorted(points)


def test_steeper_sigmoids_are_steeper_in_the_middle() -> None:
    gentle, normal, sharp = (
        curve_value(c, 0.6) for c in (AlphaCurve.SIGMOID_GENTLE, AlphaCurve.SIGMOID, AlphaCurve.SIGMOID_SHARP)
    )
    assert 0.6 < gentle < normal < sharp < 1.0


@settings(max_examples=60, deadline=None)
@given(
    curve=st.sampled_from(list(AlphaCurve)),
    steps=st.integers(1, 12),
    start=st.floats(0.0, 1.0),
    target=st.floats(0.0, 1.0),
)
def test_a_ramp_never_overshoots_and_ends_exactly_on_target(
    curve: AlphaCurve, steps: int, start: float, target: float
) -> None:
    values = _ramp(curve, steps, start, target)
    low, high = min(start, target), max(start, target)
    assert all(low <= v <= high for v in values)
    if start != target:
        assert len(values) == steps
        assert values[-1] == target


def test_zero_steps_snaps_at_once() -> None:
    controller = AlphaController()
    controller.retarget(0.7, 0, AlphaCurve.COSINE)
    assert controller.value == 0.7
    assert controller.mode is AlphaMode.HOLD
    assert not controller.step()


def test_direction_sets_the_mode() -> None:
    controller = AlphaController()
    controller.retarget(1.0, 3, AlphaCurve.LINEAR)
    modes = [controller.mode]
    while controller.ramping:
        controller.step()
    controller.retarget(0.5, 3, AlphaCurve.LINEAR)
    modes.append(controller.mode)
    assert modes == [AlphaMode.UP, AlphaMode.DOWN]


def test_retarget_mid_ramp_is_refused() -> None:
    controller = AlphaController()
    controller.retarget(1.0, 5, AlphaCurve.LINEAR)
    controller.step()
    with pytest.raises(InvalidStateMachineError, match="retarget only in HOLD"):
        controller.retarget(0.5, 3, AlphaCurve.LINEAR)


def test_values_outside_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AlphaController().retarget(1.5, 3, AlphaCurve.LINEAR)


def test_snapshot_and_state_round_trip() -> None:
    controller = AlphaController()
    controller.retarget(0.7, 5, AlphaCurve.SIGMOID)
    controller.step()
    clone = AlphaController.from_state(controller.state())
    assert clone.snapshot() == controller.snapshot()
    assert clone.start == controller.start
    assert controller.snapshot().ramping


def test_value_tables() -> None:
    """Each target and sigmoid curve has its number; no target removes a seed (that is PRUNE)."""
    assert set(ALPHA_TARGET_VALUES) == set(AlphaTarget)
    assert list(ALPHA_TARGET_VALUES.values()) == [0.5, 0.7, 1.0]
    assert 0.0 not in ALPHA_TARGET_VALUES.values()
    assert CURVE_STEEPNESS == {AlphaCurve.SIGMOID_GENTLE: 6.0, AlphaCurve.SIGMOID: 12.0, AlphaCurve.SIGMOID_SHARP: 24.0}
