"""What ``esper watch`` shows, folded from a run's config and its events one at a time.

The same fold serves a finished run (every event at once) and a running one (each poll's new events), so the view
of a run is the same whichever way it was read. It knows the two shapes of a log: PPO training (epoch events keyed
by ``round`` and ``env``) and episode runs of train heuristic, evaluate, compare and pick-schedule (keyed by
``controller`` and ``episode``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from esper.app.reporting import short_metric
from esper.app.tasks import TASKS

#: How many decisions and host signals the view keeps (newest last).
RECENT_DECISIONS = 8


@dataclass
class EpisodeTrack:
    """One episode of the current round (or controller): each slot's stage after every epoch so far."""

    label: str
    stages: dict[str, list[str]]
    last_op: str = ""
    val_accuracy: float | None = None
    finished: bool = False

    def apply(self, transitions: list[dict[str, Any]]) -> None:
        """One more epoch: every slot keeps its stage unless a transition moved it."""
        moved = {t["slot"]: t["to"] for t in transitions}
        for slot, history in self.stages.items():
            history.append(moved.get(slot, history[-1] if history else "DORMANT"))
        for slot in moved.keys() - self.stages.keys():  # a slot the task preset did not name
            self.stages[slot] = [moved[slot]]


@dataclass
class ControllerResults:
    """The finished episodes of one controller of an episode run."""

    test_accuracy: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)


@dataclass
class RunState:
    """Everything the view needs, updated by ``fold``."""

    config: dict[str, Any]
    slots: tuple[str, ...]
    #: The task's metric as headings abbreviate it (``acc``, ``next-token acc``).
    metric: str = "acc"
    steps_done: int = 0
    group: object = None
    tracks: dict[object, EpisodeTrack] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    controllers: dict[str, ControllerResults] = field(default_factory=dict)
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_DECISIONS))
    #: Per controller that reported them (newest last), per head: the sum and count of the normalized entropies
    #: of its recorded policy decisions.
    decision_entropy: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)
    stopped: str | None = None

    @classmethod
    def start(cls, config: dict[str, Any]) -> RunState:
        preset = TASKS.get(str(config.get("task")))
        if preset is None:
            return cls(config=config, slots=())
        return cls(config=config, slots=preset.slots.names(), metric=short_metric(preset.metric))

    # ------------------------------------------------------------------------------------------- the run
    @property
    def is_ppo(self) -> bool:
        return self.config.get("controller") == "ppo"

    @property
    def command(self) -> str:
        return "train ppo" if self.is_ppo else str(self.config.get("command", "?"))

    @property
    def episode_epochs(self) -> int:
        return int(self.config.get("env", {}).get("max_epochs", 1))

    @property
    def envs(self) -> int:
        return int(self.config.get("run", {}).get("envs", 1))

    @property
    def rounds_planned(self) -> int:
        return int(self.config.get("run", {}).get("rounds", 0))

    @property
    def controller_names(self) -> list[str]:
        names = self.config.get("controller_names") or self.config.get("controllers")
        return [str(n) for n in names] if isinstance(names, list) else [str(self.config.get("controller", "?"))]

    @property
    def steps_planned(self) -> int:
        """Episode steps the whole run takes (PPO: of its training rounds; validation episodes come on top)."""
        if self.is_ppo:
            return self.rounds_planned * self.envs * self.episode_epochs
        return len(self.config.get("episode_seeds", [])) * len(self.controller_names) * self.episode_epochs

    @property
    def episodes_done(self) -> int:
        return sum(len(c.test_accuracy) for c in self.controllers.values())

    @property
    def finished(self) -> bool:
        if self.stopped is not None:
            return True
        if self.is_ppo:
            return bool(self.rounds) and self.rounds[-1]["round"] + 1 >= self.rounds_planned
        return self.steps_planned > 0 and self.episodes_done * self.episode_epochs >= self.steps_planned

    # ------------------------------------------------------------------------------------------- the fold
    def fold(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "epoch":
            self._epoch(event)
        elif kind == "episode" and not self.is_ppo:
            results = self.controllers.setdefault(str(event.get("controller")), ControllerResults())
            results.test_accuracy.append(float(event.get("test_accuracy", 0.0)))
            results.returns.append(float(event.get("total_reward", 0.0)))
            self._finish_track(event)
        elif kind == "episode":
            self._finish_track(event)
        elif kind == "round":
            self.rounds.append(event)
        elif kind == "validation":
            self.validations.append(event)
        elif kind == "decision":
            self.decisions.append(event)
            heads = event.get("heads", {})
            if heads:
                name = str(event.get("controller", "policy"))
                entropy = self.decision_entropy.pop(name, {})
                self.decision_entropy[name] = entropy  # moved to the end: the newest to report
                for head, detail in heads.items():
                    total, count = entropy.get(head, (0.0, 0))
                    entropy[head] = (total + float(detail.get("entropy", 0.0)), count + 1)
        elif kind == "host":
            self.decisions.append(event)
        elif kind in ("stop", "non_finite_stop"):
            self.stopped = str(event.get("reason", kind))

    def _keys(self, event: dict[str, Any]) -> tuple[object, object, str]:
        """(group, member, label): the round and env of a PPO step, the controller and episode of the others."""
        if "round" in event:
            return event["round"], event.get("env"), f"env {event.get('env')}"
        return event.get("controller"), event.get("episode"), f"episode {event.get('episode')}"

    def _epoch(self, event: dict[str, Any]) -> None:
        self.steps_done += 1
        group, member, label = self._keys(event)
        if group != self.group:
            self.group, self.tracks = group, {}
        track = self.tracks.get(member)
        if track is None:
            track = self.tracks[member] = EpisodeTrack(label, {slot: [] for slot in self.slots})
        track.apply(list(event.get("lifecycle", [])))
        op, slot = event.get("op", "?"), event.get("slot")
        track.last_op = op if op == "WAIT" or slot is None else f"{op} {self._slot_name(slot)}"
        track.val_accuracy = event.get("val_accuracy")

    def _finish_track(self, event: dict[str, Any]) -> None:
        group, member, _ = self._keys(event)
        if group == self.group and member in self.tracks:
            self.tracks[member].finished = True

    def _slot_name(self, slot: object) -> str:
        return self.slots[slot] if isinstance(slot, int) and 0 <= slot < len(self.slots) else str(slot)

    # -------------------------------------------------------------------------------------- derived views
    def shown_tracks(self) -> list[EpisodeTrack]:
        """The episodes of the current round (PPO) or the last ``envs`` episodes of the current controller."""
        tracks = list(self.tracks.values())
        return tracks if self.is_ppo else tracks[-self.envs :]

    def head_entropy(self) -> tuple[str, dict[str, float]] | None:
        """The controller whose policy decisions were recorded last, and per head the mean normalized entropy of
        its recorded decisions (episode runs; a compare keeps each controller's apart). None without any."""
        if not self.decision_entropy:
            return None
        name, entropy = next(reversed(self.decision_entropy.items()))
        return name, {head: total / count for head, (total, count) in entropy.items()}

    def seconds_left(self, elapsed: float) -> float | None:
        """Estimated seconds to the end: PPO from the mean duration of its rounds, the others from the step rate
        over ``elapsed`` seconds of running. None while nothing says how fast the run goes."""
        if self.finished:
            return 0.0
        if self.is_ppo:
            if not self.rounds:
                return None
            mean = sum(float(r.get("seconds", 0.0)) for r in self.rounds) / len(self.rounds)
            return mean * max(self.rounds_planned - int(self.rounds[-1]["round"]) - 1, 0)
        if self.steps_done == 0 or elapsed <= 0:
            return None
        return elapsed / self.steps_done * max(self.steps_planned - self.steps_done, 0)
