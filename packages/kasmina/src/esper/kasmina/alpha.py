"""The alpha controller: how strongly a seed's output is blended in, ramped one step per epoch.

Ramps are driven only by the slot's per-epoch tick, follow one of leyline's ``AlphaCurve`` shapes, never
overshoot, and land exactly on the target at their last step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from esper.leyline import AlphaCurve, AlphaMode, AlphaSnapshot, AlphaTarget, ConfigError, InvalidStateMachineError

#: Steepness k of the renormalized sigmoid curves: gentle, standard and sharp ramps.
CURVE_STEEPNESS: Mapping[AlphaCurve, float] = MappingProxyType(
    {AlphaCurve.SIGMOID_GENTLE: 6.0, AlphaCurve.SIGMOID: 12.0, AlphaCurve.SIGMOID_SHARP: 24.0}
)

#: The alpha each ``AlphaTarget`` of a SET_ALPHA_TARGET (and of a germination's blending) heads for. Never 0:
#: removing a seed is PRUNE.
ALPHA_TARGET_VALUES: Mapping[AlphaTarget, float] = MappingProxyType(
    {AlphaTarget.HALF: 0.5, AlphaTarget.SEVENTY: 0.7, AlphaTarget.FULL: 1.0}
)


def curve_value(curve: AlphaCurve, t: float) -> float:
    """Progress in [0, 1] of a ramp at time ``t`` in [0, 1]; every curve maps 0 -> 0 and 1 -> 1."""
    t = min(1.0, max(0.0, t))
    if curve is AlphaCurve.LINEAR:
        return t
    if curve is AlphaCurve.COSINE:
        return 0.5 * (1.0 - math.cos(math.pi * t))
    k = CURVE_STEEPNESS[curve]
    low, high = _sigmoid(-k / 2.0), _sigmoid(k / 2.0)
    return (_sigmoid(k * (t - 0.5)) - low) / (high - low)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"alpha {name} must be in [0, 1], got {value}")


class AlphaController:
    """Alpha of one seed: a value, and while ramping the start, target, curve and step counters."""

    __slots__ = ("curve", "mode", "start", "steps_done", "steps_total", "target", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.start = 0.0
        self.target = 0.0
        self.mode = AlphaMode.HOLD
        self.curve = AlphaCurve.LINEAR
        self.steps_total = 0
        self.steps_done = 0

    @property
    def ramping(self) -> bool:
        return self.mode is not AlphaMode.HOLD

    def retarget(self, target: float, steps: int, curve: AlphaCurve) -> None:
        """Start a ramp from the current value to ``target`` over ``steps`` ticks (0 = at once).

        Only allowed while holding: changing course mid-ramp would let a controller dither.
        """
        _check_unit("target", target)
        if steps < 0:
            raise ConfigError(f"alpha ramp steps must be >= 0, got {steps}")
        if self.ramping:
            raise InvalidStateMachineError(
                f"alpha is ramping {self.mode.name} to {self.target} ({self.steps_done}/{self.steps_total}); "
                "retarget only in HOLD"
            )
        self.start = self.value
        self.target = target
        self.curve = curve
        self.steps_total = steps
        self.steps_done = 0
        if steps == 0 or target == self.value:
            self.value = target
            self.steps_total = 0
            self.mode = AlphaMode.HOLD
        else:
            self.mode = AlphaMode.UP if target > self.value else AlphaMode.DOWN

    def step(self) -> bool:
        """Advance a ramp by one epoch. Returns True when this step finished the ramp."""
        if not self.ramping:
            return False
        self.steps_done += 1
        if self.steps_done >= self.steps_total:
            self.value = self.target
            self.mode = AlphaMode.HOLD
            return True
        progress = curve_value(self.curve, self.steps_done / self.steps_total)
        value = self.start + (self.target - self.start) * progress
        low, high = min(self.start, self.target), max(self.start, self.target)
        self.value = min(high, max(low, value))
        return False

    def snapshot(self) -> AlphaSnapshot:
        return AlphaSnapshot(
            value=self.value,
            target=self.target,
            mode=self.mode,
            steps_total=self.steps_total,
            steps_done=self.steps_done,
            curve=self.curve,
        )

    def state(self) -> dict[str, float | int]:
        """Plain values for checkpoints (enums as ints)."""
        return {
            "value": self.value,
            "start": self.start,
            "target": self.target,
            "mode": int(self.mode),
            "curve": int(self.curve),
            "steps_total": self.steps_total,
            "steps_done": self.steps_done,
        }

    @classmethod
    def from_state(cls, state: dict[str, float | int]) -> AlphaController:
        controller = cls()
        controller.value = float(state["value"])
        controller.start = float(state["start"])
        controller.target = float(state["target"])
        controller.mode = AlphaMode(int(state["mode"]))
        controller.curve = AlphaCurve(int(state["curve"]))
        controller.steps_total = int(state["steps_total"])
        controller.steps_done = int(state["steps_done"])
        for name in ("value", "start", "target"):
            _check_unit(name, float(state[name]))
        if not 0 <= controller.steps_done <= controller.steps_total:
            raise ConfigError(f"alpha steps {controller.steps_done}/{controller.steps_total} out of range")
        return controller
