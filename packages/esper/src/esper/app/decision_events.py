"""The ``decision`` event: what a controller decided at one step and why, as it said itself.

A rule-based controller gives the rule that fired and the signals it saw (``rule``, ``signals``); a learned one
the probabilities of the allowed ops, each relevant head's choice with its probability and normalized entropy,
and its value estimate (``op_probabilities``, ``heads``, ``value``). ``epoch`` is the epoch of the observation the
controller acted on (the step's ``epoch`` event, written after it, holds the epoch that step trained: one more).
Recording is on by default in episode runs (train heuristic, evaluate, compare, pick-schedule) and off in PPO
training (``[run] record_decisions``, ``--record-decisions``); it only reads, so episodes are the same either way.
"""

from __future__ import annotations

from esper.app.run_directory import RunDirectory
from esper.leyline import LifecycleOp
from esper.simic.episode_loop import ExplainedDecision


def log_decision(directory: RunDirectory, decision: ExplainedDecision, **episode: object) -> None:
    """``episode`` names the episode as the ``epoch`` events do. The action is ``op`` and ``slot``, and the
    ``blueprint`` of a GERMINATE (whatever the controller, so a rule's germination says what it grew)."""
    action = decision.action
    grown = {"blueprint": action.blueprint.registry_name} if action.op is LifecycleOp.GERMINATE else {}
    directory.event(
        "decision",
        **episode,
        epoch=decision.epoch,
        op=action.op.name,
        slot=action.slot,
        **grown,
        **decision.explanation,
    )
