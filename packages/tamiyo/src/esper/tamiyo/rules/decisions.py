"""Typed decisions of the rule-based controllers: why an action was chosen, validated when built.

The reason is an explicit enum and fixes the op (leyline's ``LifecycleOp``), so nothing is ever inferred by
parsing names. There is no "confidence": the heuristic's rules are thresholds, not calibrated probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from esper.leyline import (
    ActionHead,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    ConfigError,
    FactoredAction,
    LifecycleOp,
    Tempo,
    is_relevant,
)


class DecisionReason(Enum):
    """Why a rule-based controller acted."""

    NOTHING_TO_DO = "nothing_to_do"
    GERMINATE_ON_PLATEAU = "germinate_on_plateau"
    ADVANCE_STAGE = "advance_stage"
    ADVANCE_FULL_ALPHA = "advance_full_alpha"
    RETARGET_FULL_ALPHA = "retarget_full_alpha"
    FOSSILIZE_CONTRIBUTION = "fossilize_contribution"
    PRUNE_LOW_CONTRIBUTION = "prune_low_contribution"
    PRUNE_ACCURACY_DROP = "prune_accuracy_drop"
    PRUNE_RANSOMWARE = "prune_ransomware"
    PRUNE_STALLED = "prune_stalled"


#: The op each reason leads to.
REASON_OPS: Mapping[DecisionReason, LifecycleOp] = MappingProxyType(
    {
        DecisionReason.NOTHING_TO_DO: LifecycleOp.WAIT,
        DecisionReason.GERMINATE_ON_PLATEAU: LifecycleOp.GERMINATE,
        DecisionReason.ADVANCE_STAGE: LifecycleOp.ADVANCE,
        DecisionReason.ADVANCE_FULL_ALPHA: LifecycleOp.ADVANCE,
        DecisionReason.RETARGET_FULL_ALPHA: LifecycleOp.SET_ALPHA_TARGET,
        DecisionReason.FOSSILIZE_CONTRIBUTION: LifecycleOp.FOSSILIZE,
        DecisionReason.PRUNE_LOW_CONTRIBUTION: LifecycleOp.PRUNE,
        DecisionReason.PRUNE_ACCURACY_DROP: LifecycleOp.PRUNE,
        DecisionReason.PRUNE_RANSOMWARE: LifecycleOp.PRUNE,
        DecisionReason.PRUNE_STALLED: LifecycleOp.PRUNE,
    }
)


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision for one env. ``slot`` (index in the slot config) is set exactly when the op targets a slot;
    ``blueprint`` exactly when it germinates. Germination style, tempo and target ride along for GERMINATE."""

    reason: DecisionReason
    slot: int | None = None
    blueprint: Blueprint | None = None
    style: BlendStyle = BlendStyle.SIGMOID_ADD
    tempo: Tempo = Tempo.STANDARD
    alpha_target: AlphaTarget = AlphaTarget.FULL

    def __post_init__(self) -> None:
        op = self.op
        targets_slot = is_relevant(op, ActionHead.SLOT)
        if targets_slot != (self.slot is not None):
            raise ConfigError(f"{op.name} ({self.reason.value}) {'needs' if targets_slot else 'takes no'} slot")
        if self.slot is not None and self.slot < 0:
            raise ConfigError(f"slot index must be >= 0, got {self.slot}")
        germinates = op is LifecycleOp.GERMINATE
        if germinates != (self.blueprint is not None):
            raise ConfigError(f"{op.name} {'needs' if germinates else 'takes no'} blueprint")
        if self.blueprint is Blueprint.NOOP:
            raise ConfigError("a germination needs a real blueprint, not NOOP")

    @property
    def op(self) -> LifecycleOp:
        return REASON_OPS[self.reason]

    def to_action(self) -> FactoredAction:
        """The canonical leyline action (heads the op ignores hold their placeholders)."""
        slot = self.slot if self.slot is not None else 0
        op = self.op
        if op is LifecycleOp.GERMINATE and self.blueprint is not None:
            return FactoredAction.germinate(slot, self.blueprint, self.style, self.tempo, self.alpha_target)
        if op is LifecycleOp.SET_ALPHA_TARGET:
            return FactoredAction.set_alpha_target(slot, self.alpha_target, style=self.style)
        return FactoredAction(op, slot).canonical()
