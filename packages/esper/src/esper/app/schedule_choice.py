"""The fixed schedule ``esper pick-schedule`` chose on training-range episode seeds, as a small JSON file.

``esper compare --controllers best-schedule:<file>`` reads it back, so the baseline a learned controller has to
beat was chosen without ever looking at an evaluation seed. The file records the task, the episode length, the
seeds and every schedule's score, so the choice can be checked and repeated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.leyline import Blueprint, ConfigError, blueprint_from_name
from esper.simic.atomic_files import write_json_atomic

BEST_SCHEDULE_PREFIX = "best-schedule:"
#: The file name inside a ``pick-schedule`` run directory (a directory given as the choice means this file).
SCHEDULE_CHOICE_FILE = "best_schedule.json"
_FORMAT = "esper-schedule-choice"
#: What the choice maximizes: the mean final validation accuracy (the test split is never looked at).
SELECTION_METRIC = "final_val_accuracy"


@dataclass(frozen=True)
class ScheduleChoice:
    path: Path
    task: str
    blueprint: Blueprint
    episode_epochs: int
    episode_seeds: tuple[int, ...]
    scores: Mapping[str, float]

    def check_task(self, task: str) -> None:
        if task != self.task:
            raise ConfigError(
                f"the schedule in {self.path} was chosen on task {self.task!r}, not {task!r} "
                f"(run esper pick-schedule --task {task})"
            )


def choice_file(path: Path) -> Path:
    return path / SCHEDULE_CHOICE_FILE if path.is_dir() else path


def write_schedule_choice(
    path: Path,
    *,
    task: str,
    blueprint: Blueprint,
    episode_epochs: int,
    episode_seeds: Sequence[int],
    scores: Mapping[str, float],
) -> None:
    write_json_atomic(
        path,
        {
            "format": _FORMAT,
            "task": task,
            "blueprint": blueprint.registry_name,
            "metric": SELECTION_METRIC,
            "episode_epochs": episode_epochs,
            "episode_seeds": list(episode_seeds),
            "scores": dict(scores),
        },
    )


def read_schedule_choice(path: Path) -> ScheduleChoice:
    """The choice in ``path`` (a file, or a ``pick-schedule`` run directory); anything else is one ConfigError."""
    file = choice_file(path)
    try:
        data: Any = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no schedule choice at {file} (write one with esper pick-schedule)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the schedule choice {file}: {error}") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ConfigError(f"{file} is not a schedule choice written by esper pick-schedule")
    try:
        task, name, epochs = data["task"], data["blueprint"], data["episode_epochs"]
        seeds, scores = data["episode_seeds"], data["scores"]
        if not (isinstance(task, str) and isinstance(name, str) and type(epochs) is int):
            raise TypeError("task, blueprint or episode_epochs has the wrong type")
        if not (isinstance(seeds, list) and all(type(s) is int for s in seeds) and isinstance(scores, dict)):
            raise TypeError("episode_seeds or scores has the wrong type")
        blueprint = blueprint_from_name(name)
        scored = {str(label): float(score) for label, score in scores.items()}
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"the schedule choice {file} is malformed: {error}") from None
    return ScheduleChoice(file, task, blueprint, epochs, tuple(seeds), scored)
