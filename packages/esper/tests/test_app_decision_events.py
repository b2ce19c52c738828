"""The ``decision`` event holds the action a controller took (a germination names its blueprint, whatever the
controller) beside what the controller said of it."""

from __future__ import annotations

import json
from pathlib import Path

from esper.app.decision_events import log_decision
from esper.app.run_directory import RunDirectory
from esper.leyline import Blueprint, FactoredAction
from esper.simic.episode_loop import ExplainedDecision


def test_a_decision_event_holds_the_action_and_the_explanation(tmp_path: Path) -> None:
    rule = {"rule": "germinate_on_plateau", "signals": {"plateau_epochs": 3}}
    with RunDirectory(tmp_path / "run", tensorboard=False) as directory:
        germinate = ExplainedDecision(1, 6, FactoredAction.germinate(2, Blueprint.CONV_LIGHT), rule)
        log_decision(directory, germinate, controller="heuristic", episode=1)
        wait = ExplainedDecision(1, 7, FactoredAction.wait(), {"rule": "nothing_to_do", "signals": {}})
        log_decision(directory, wait, controller="heuristic", episode=1)
    first, second = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert first == {
        "event": "decision",
        "controller": "heuristic",
        "episode": 1,
        "epoch": 6,
        "op": "GERMINATE",
        "slot": 2,
        "blueprint": "conv_light",
        **rule,
    }
    assert "blueprint" not in second and second["op"] == "WAIT"
