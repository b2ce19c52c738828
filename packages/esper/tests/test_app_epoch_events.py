"""The ``epoch`` and ``host`` events every command writes: the step's lifecycle transitions, and the host signals
of tamiyo's tracker (plateau reached, plateau left, host stabilized), once each when they happen."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from esper.app.epoch_events import PLATEAU, PLATEAU_ENDED, STABILIZED, EpochLog, HostSignals
from esper.app.run_directory import RunDirectory
from esper.leyline import FactoredAction, SeedStage
from esper.simic.envs.episode_records import LifecycleEvent, StepResult


def step(
    epoch: int, loss: float, accuracy: float, *, terminal: bool = False, events: tuple[LifecycleEvent, ...] = ()
) -> StepResult:
    observation = SimpleNamespace(epoch=epoch, val_loss=loss, val_accuracy=accuracy)
    result = SimpleNamespace(
        observation=observation,
        reward=0.5,
        action=FactoredAction.wait(),
        action_success=True,
        terminal=terminal,
        events=events,
    )
    return cast(StepResult, result)


#: Accuracy gains below the 0.5 pp plateau threshold from epoch 2 on, losses inside the stable band from epoch 2
#: on, then a jump of 5 pp at epoch 6.
CURVE = [(1, 2.0, 10.0), (2, 1.99, 10.1), (3, 1.98, 10.2), (4, 1.97, 10.3), (5, 1.96, 10.3), (6, 1.5, 15.3)]


def test_host_signals_are_raised_once_when_they_happen() -> None:
    signals = HostSignals()
    raised = {epoch: signals.observe(("heuristic", 0), step(epoch, loss, acc)) for epoch, loss, acc in CURVE}
    assert raised == {1: [], 2: [], 3: [], 4: [PLATEAU, STABILIZED], 5: [], 6: [PLATEAU_ENDED]}


def test_each_episode_has_its_own_tracker_and_a_finished_one_starts_afresh() -> None:
    signals = HostSignals()
    for epoch, loss, acc in CURVE[:4]:
        signals.observe((0, 0), step(epoch, loss, acc))
    assert [signals.observe((0, 1), step(e, loss, acc)) for e, loss, acc in CURVE[:3]] == [[], [], []]
    signals.observe((0, 0), step(5, 1.96, 10.3, terminal=True))
    assert signals.observe((0, 0), step(1, 2.0, 10.0)) == []  # a new episode under the same key


def test_epoch_events_hold_the_lifecycle_transitions_and_host_events_follow(tmp_path: Path) -> None:
    germinated = LifecycleEvent(3, "r0c1", SeedStage.DORMANT, SeedStage.GERMINATED, "conv_light", 120, None)
    with RunDirectory(tmp_path / "run", tensorboard=False) as directory:
        log = EpochLog(directory)
        for epoch, loss, acc in CURVE[:4]:
            log.log(step(epoch, loss, acc, events=(germinated,) if epoch == 4 else ()), round=2, env=1)
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["epoch"] * 4 + ["host", "host"]
    assert events[3]["lifecycle"] == [
        {
            "epoch": 3,
            "slot": "r0c1",
            "from": "DORMANT",
            "to": "GERMINATED",
            "blueprint": "conv_light",
            "params": 120,
            "contribution": None,
        }
    ]
    assert events[0]["lifecycle"] == [] and events[0]["round"] == 2 and events[0]["env"] == 1
    assert [(e["signal"], e["epoch"], e["round"], e["env"]) for e in events[4:]] == [
        (PLATEAU, 4, 2, 1),
        (STABILIZED, 4, 2, 1),
    ]
