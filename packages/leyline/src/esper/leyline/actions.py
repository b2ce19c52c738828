"""The factored action space: 8 heads in a fixed order, their value tables, causal relevance and placeholders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from esper.leyline.blueprints import TOPOLOGY_BLUEPRINTS, Blueprint, Topology
from esper.leyline.errors import ConfigError
from esper.leyline.slots import SlotConfig


class ActionHead(StrEnum):
    """The heads, in the order the policy samples and stores them (``op`` is sampled first regardless)."""

    SLOT = "slot"
    BLUEPRINT = "blueprint"
    STYLE = "style"
    TEMPO = "tempo"
    ALPHA_TARGET = "alpha_target"
    ALPHA_SPEED = "alpha_speed"
    ALPHA_CURVE = "alpha_curve"
    OP = "op"


HEAD_ORDER: tuple[ActionHead, ...] = tuple(ActionHead)
#: Column of each head in the per-head tensors of the policy seam (``ActionResult``, ``EvalResult``,
#: ``PolicyBundle.evaluate_actions``): ``HEAD_ORDER[i]`` is column ``i``.
HEAD_INDEX: Mapping[ActionHead, int] = MappingProxyType({head: index for index, head in enumerate(HEAD_ORDER)})


class LifecycleOp(IntEnum):
    WAIT = 0
    GERMINATE = 1
    SET_ALPHA_TARGET = 2
    PRUNE = 3
    FOSSILIZE = 4
    ADVANCE = 5


class AlphaCurve(IntEnum):
    """Shape of an alpha ramp on t in [0, 1]; sigmoid variants carry a steepness (kasmina's alpha controller)."""

    LINEAR = 0
    COSINE = 1
    SIGMOID_GENTLE = 2
    SIGMOID = 3
    SIGMOID_SHARP = 4


class BlendOperator(IntEnum):
    """How a blended seed's output s combines with the host activation h (kasmina's blending)."""

    ADD = 0
    MULTIPLY = 1
    GATE = 2


class BlendStyle(IntEnum):
    """Blend curve and operator in one head, so that invalid pairs cannot be expressed."""

    LINEAR_ADD = 0
    LINEAR_MULTIPLY = 1
    SIGMOID_ADD = 2
    GATED_GATE = 3


#: style -> (curve of the blending ramp, blend operator).
STYLE_TABLE: Mapping[BlendStyle, tuple[AlphaCurve, BlendOperator]] = MappingProxyType(
    {
        BlendStyle.LINEAR_ADD: (AlphaCurve.LINEAR, BlendOperator.ADD),
        BlendStyle.LINEAR_MULTIPLY: (AlphaCurve.LINEAR, BlendOperator.MULTIPLY),
        BlendStyle.SIGMOID_ADD: (AlphaCurve.SIGMOID, BlendOperator.ADD),
        BlendStyle.GATED_GATE: (AlphaCurve.LINEAR, BlendOperator.GATE),
    }
)


class Tempo(IntEnum):
    """Length of the blending ramp chosen at germination."""

    FAST = 0
    STANDARD = 1
    SLOW = 2


TEMPO_EPOCHS: Mapping[Tempo, int] = MappingProxyType({Tempo.FAST: 3, Tempo.STANDARD: 5, Tempo.SLOW: 8})


class AlphaTarget(IntEnum):
    """Alpha a ramp heads for (the values are kasmina's ``ALPHA_TARGET_VALUES``). Removal is PRUNE, never a target
    of 0."""

    HALF = 0
    SEVENTY = 1
    FULL = 2


class AlphaSpeed(IntEnum):
    """Controller ticks an alpha retarget or a scheduled prune takes (0 = at once)."""

    INSTANT = 0
    FAST = 1
    MEDIUM = 2
    SLOW = 3


ALPHA_SPEED_TICKS: Mapping[AlphaSpeed, int] = MappingProxyType(
    {AlphaSpeed.INSTANT: 0, AlphaSpeed.FAST: 3, AlphaSpeed.MEDIUM: 5, AlphaSpeed.SLOW: 8}
)

_FIXED_HEAD_SIZES: Mapping[ActionHead, int] = MappingProxyType(
    {
        ActionHead.STYLE: len(BlendStyle),
        ActionHead.TEMPO: len(Tempo),
        ActionHead.ALPHA_TARGET: len(AlphaTarget),
        ActionHead.ALPHA_SPEED: len(AlphaSpeed),
        ActionHead.ALPHA_CURVE: len(AlphaCurve),
        ActionHead.OP: len(LifecycleOp),
    }
)


def head_sizes(slot_config: SlotConfig, topology: Topology) -> dict[ActionHead, int]:
    """Number of actions of each head, in ``HEAD_ORDER``."""
    sizes = {ActionHead.SLOT: slot_config.num_slots, ActionHead.BLUEPRINT: len(TOPOLOGY_BLUEPRINTS[topology])}
    sizes.update(_FIXED_HEAD_SIZES)
    return {head: sizes[head] for head in HEAD_ORDER}


def mask_width(sizes: Mapping[ActionHead, int]) -> int:
    """Width of the padded per-head masks of the policy seam (``ActionResult.masks``): the largest head. Head ``h``
    uses its first ``sizes[h]`` columns; the columns after them are padding and always False."""
    return max(sizes[head] for head in HEAD_ORDER)


_H = ActionHead

#: Which heads matter for each op (op itself always does). Irrelevant heads are canonicalized to their
#: placeholder and contribute nothing to log-prob, ratio, KL or entropy.
CAUSAL_RELEVANCE: Mapping[LifecycleOp, frozenset[ActionHead]] = MappingProxyType(
    {
        LifecycleOp.WAIT: frozenset({_H.OP}),
        LifecycleOp.GERMINATE: frozenset({_H.OP, _H.SLOT, _H.BLUEPRINT, _H.STYLE, _H.TEMPO, _H.ALPHA_TARGET}),
        LifecycleOp.SET_ALPHA_TARGET: frozenset(
            {_H.OP, _H.SLOT, _H.STYLE, _H.ALPHA_TARGET, _H.ALPHA_SPEED, _H.ALPHA_CURVE}
        ),
        LifecycleOp.PRUNE: frozenset({_H.OP, _H.SLOT, _H.ALPHA_SPEED, _H.ALPHA_CURVE}),
        LifecycleOp.FOSSILIZE: frozenset({_H.OP, _H.SLOT}),
        LifecycleOp.ADVANCE: frozenset({_H.OP, _H.SLOT}),
    }
)


def is_relevant(op: LifecycleOp, head: ActionHead) -> bool:
    return head in CAUSAL_RELEVANCE[op]


def relevance_rows() -> tuple[tuple[bool, ...], ...]:
    """``[op][head]`` relevance as plain booleans in ``LifecycleOp`` x ``HEAD_ORDER`` order (for tensors)."""
    return tuple(tuple(head in CAUSAL_RELEVANCE[op] for head in HEAD_ORDER) for op in LifecycleOp)


#: Placeholder index of every head except SLOT and OP when the head is irrelevant for the sampled op.
#: The slot head's placeholder is the first slot its (op-conditioned) mask allows; OP is always relevant.
HEAD_PLACEHOLDERS: Mapping[ActionHead, int] = MappingProxyType(
    {
        _H.BLUEPRINT: 0,  # NOOP is index 0 of every topology
        _H.STYLE: int(BlendStyle.SIGMOID_ADD),
        _H.TEMPO: int(Tempo.STANDARD),
        _H.ALPHA_TARGET: int(AlphaTarget.FULL),
        _H.ALPHA_SPEED: int(AlphaSpeed.INSTANT),
        _H.ALPHA_CURVE: int(AlphaCurve.LINEAR),
    }
)


@dataclass(frozen=True, slots=True)
class FactoredAction:
    """One decision for one environment. ``slot`` is the index into the slot config (row-major order).

    Fields a given op does not use keep their placeholder values; ``canonical()`` enforces that.
    """

    op: LifecycleOp
    slot: int = 0
    blueprint: Blueprint = Blueprint.NOOP
    style: BlendStyle = BlendStyle.SIGMOID_ADD
    tempo: Tempo = Tempo.STANDARD
    alpha_target: AlphaTarget = AlphaTarget.FULL
    alpha_speed: AlphaSpeed = AlphaSpeed.INSTANT
    alpha_curve: AlphaCurve = AlphaCurve.LINEAR

    def __post_init__(self) -> None:
        if self.slot < 0:
            raise ConfigError(f"slot index must be >= 0, got {self.slot}")
        if self.op is LifecycleOp.GERMINATE and self.blueprint is Blueprint.NOOP:
            raise ConfigError("GERMINATE needs a blueprint; NOOP is never valid for GERMINATE")

    @classmethod
    def wait(cls) -> FactoredAction:
        return cls(LifecycleOp.WAIT)

    @classmethod
    def germinate(
        cls,
        slot: int,
        blueprint: Blueprint,
        style: BlendStyle = BlendStyle.SIGMOID_ADD,
        tempo: Tempo = Tempo.STANDARD,
        alpha_target: AlphaTarget = AlphaTarget.FULL,
    ) -> FactoredAction:
        return cls(LifecycleOp.GERMINATE, slot, blueprint, style, tempo, alpha_target)

    @classmethod
    def advance(cls, slot: int) -> FactoredAction:
        return cls(LifecycleOp.ADVANCE, slot)

    @classmethod
    def fossilize(cls, slot: int) -> FactoredAction:
        return cls(LifecycleOp.FOSSILIZE, slot)

    @classmethod
    def prune(
        cls, slot: int, speed: AlphaSpeed = AlphaSpeed.INSTANT, curve: AlphaCurve = AlphaCurve.LINEAR
    ) -> FactoredAction:
        return cls(LifecycleOp.PRUNE, slot, alpha_speed=speed, alpha_curve=curve)

    @classmethod
    def set_alpha_target(
        cls,
        slot: int,
        target: AlphaTarget,
        speed: AlphaSpeed = AlphaSpeed.FAST,
        curve: AlphaCurve = AlphaCurve.LINEAR,
        style: BlendStyle = BlendStyle.SIGMOID_ADD,
    ) -> FactoredAction:
        return cls(LifecycleOp.SET_ALPHA_TARGET, slot, Blueprint.NOOP, style, Tempo.STANDARD, target, speed, curve)

    def canonical(self) -> FactoredAction:
        """The same decision with every head the op ignores reset to its placeholder (slot 0 for WAIT)."""
        relevant = CAUSAL_RELEVANCE[self.op]
        return FactoredAction(
            op=self.op,
            slot=self.slot if _H.SLOT in relevant else 0,
            blueprint=self.blueprint if _H.BLUEPRINT in relevant else Blueprint.NOOP,
            style=self.style if _H.STYLE in relevant else BlendStyle(HEAD_PLACEHOLDERS[_H.STYLE]),
            tempo=self.tempo if _H.TEMPO in relevant else Tempo(HEAD_PLACEHOLDERS[_H.TEMPO]),
            alpha_target=self.alpha_target
            if _H.ALPHA_TARGET in relevant
            else AlphaTarget(HEAD_PLACEHOLDERS[_H.ALPHA_TARGET]),
            alpha_speed=self.alpha_speed
            if _H.ALPHA_SPEED in relevant
            else AlphaSpeed(HEAD_PLACEHOLDERS[_H.ALPHA_SPEED]),
            alpha_curve=self.alpha_curve
            if _H.ALPHA_CURVE in relevant
            else AlphaCurve(HEAD_PLACEHOLDERS[_H.ALPHA_CURVE]),
        )

    def head_indices(self, topology: Topology) -> dict[ActionHead, int]:
        """The action index of every head, in ``HEAD_ORDER`` (blueprint is its index within the topology)."""
        blueprints = TOPOLOGY_BLUEPRINTS[topology]
        if self.blueprint not in blueprints:
            raise ConfigError(f"blueprint {self.blueprint.registry_name} is not a {topology.value} blueprint")
        return {
            _H.SLOT: self.slot,
            _H.BLUEPRINT: blueprints.index(self.blueprint),
            _H.STYLE: int(self.style),
            _H.TEMPO: int(self.tempo),
            _H.ALPHA_TARGET: int(self.alpha_target),
            _H.ALPHA_SPEED: int(self.alpha_speed),
            _H.ALPHA_CURVE: int(self.alpha_curve),
            _H.OP: int(self.op),
        }

    @classmethod
    def from_head_indices(cls, indices: Mapping[ActionHead, int], topology: Topology) -> FactoredAction:
        """Inverse of ``head_indices``; every head must be present and in range."""
        missing = [head.value for head in HEAD_ORDER if head not in indices]
        if missing:
            raise ConfigError(f"action is missing heads: {missing}")
        blueprints = TOPOLOGY_BLUEPRINTS[topology]
        blueprint_index = indices[_H.BLUEPRINT]
        if not 0 <= blueprint_index < len(blueprints):
            raise ConfigError(f"blueprint index {blueprint_index} out of range for {topology.value}")
        try:
            return cls(
                op=LifecycleOp(indices[_H.OP]),
                slot=indices[_H.SLOT],
                blueprint=blueprints[blueprint_index],
                style=BlendStyle(indices[_H.STYLE]),
                tempo=Tempo(indices[_H.TEMPO]),
                alpha_target=AlphaTarget(indices[_H.ALPHA_TARGET]),
                alpha_speed=AlphaSpeed(indices[_H.ALPHA_SPEED]),
                alpha_curve=AlphaCurve(indices[_H.ALPHA_CURVE]),
            )
        except ValueError as error:
            raise ConfigError(f"action index out of range: {error}") from None
