"""Typed decisions: the reason fixes the op, inconsistent decisions are refused, conversion is canonical."""

from __future__ import annotations

import pytest

from esper.leyline import AlphaTarget, BlendStyle, Blueprint, ConfigError, FactoredAction, LifecycleOp, Tempo
from esper.tamiyo import Decision, DecisionReason
from esper.tamiyo.rules.decisions import REASON_OPS


def test_every_reason_has_an_op() -> None:
    assert set(REASON_OPS) == set(DecisionReason)
    assert Decision(DecisionReason.PRUNE_RANSOMWARE, slot=1).op is LifecycleOp.PRUNE


def test_inconsistent_decisions_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs slot"):
        Decision(DecisionReason.ADVANCE_STAGE)
    with pytest.raises(ConfigError, match="takes no slot"):
        Decision(DecisionReason.NOTHING_TO_DO, slot=0)
    with pytest.raises(ConfigError, match="needs blueprint"):
        Decision(DecisionReason.GERMINATE_ON_PLATEAU, slot=0)
    with pytest.raises(ConfigError, match="takes no blueprint"):
        Decision(DecisionReason.FOSSILIZE_CONTRIBUTION, slot=0, blueprint=Blueprint.NORM)
    with pytest.raises(ConfigError, match="NOOP"):
        Decision(DecisionReason.GERMINATE_ON_PLATEAU, slot=0, blueprint=Blueprint.NOOP)
    with pytest.raises(ConfigError, match=">= 0"):
        Decision(DecisionReason.PRUNE_LOW_CONTRIBUTION, slot=-1)


def test_conversion_to_factored_actions() -> None:
    germinate = Decision(
        DecisionReason.GERMINATE_ON_PLATEAU,
        slot=2,
        blueprint=Blueprint.CONV_HEAVY,
        style=BlendStyle.GATED_GATE,
        tempo=Tempo.SLOW,
    )
    assert germinate.to_action() == FactoredAction.germinate(2, Blueprint.CONV_HEAVY, BlendStyle.GATED_GATE, Tempo.SLOW)
    assert Decision(DecisionReason.NOTHING_TO_DO).to_action() == FactoredAction.wait()
    assert Decision(DecisionReason.FOSSILIZE_CONTRIBUTION, slot=1).to_action() == FactoredAction.fossilize(1)
    retarget = Decision(DecisionReason.RETARGET_FULL_ALPHA, slot=0).to_action()
    assert retarget.op is LifecycleOp.SET_ALPHA_TARGET and retarget.alpha_target is AlphaTarget.FULL
    for reason in DecisionReason:
        decision = (
            Decision(reason, slot=0, blueprint=Blueprint.NORM)
            if reason is DecisionReason.GERMINATE_ON_PLATEAU
            else Decision(reason, slot=None if reason is DecisionReason.NOTHING_TO_DO else 0)
        )
        action = decision.to_action()
        assert action.op is decision.op and action == action.canonical()
