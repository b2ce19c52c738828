"""The ``epoch`` and ``host`` events: what one episode step did, written the same way by every command.

An ``epoch`` event holds the step's action, how the epoch ended and the lifecycle transitions it caused (so a
reader of the log, such as ``esper watch``, can follow every slot live). A ``host`` event says that the host's
validation curve reached a plateau, left it, or stabilized, as tamiyo's signal tracker judges it with the
heuristic's thresholds; it is tracked for every controller (the learned ones too), from the first epoch trained.
"""

from __future__ import annotations

from esper.app.run_directory import RunDirectory
from esper.simic.envs.episode_records import StepResult
from esper.tamiyo import HeuristicConfig, SignalTracker

PLATEAU, PLATEAU_ENDED, STABILIZED = "plateau", "plateau_ended", "stabilized"


class HostSignals:
    """One signal tracker per running episode (forgotten when it ends); says which host signals a step raised."""

    def __init__(self, config: HeuristicConfig | None = None) -> None:
        self._config = config or HeuristicConfig()
        self._trackers: dict[tuple[object, ...], SignalTracker] = {}

    def observe(self, episode: tuple[object, ...], result: StepResult) -> list[str]:
        tracker = self._trackers.setdefault(episode, SignalTracker(self._config.tracker_config()))
        before = tracker.signals
        after = tracker.update(result.observation.val_loss, result.observation.val_accuracy)
        if result.terminal:
            del self._trackers[episode]
        needed = self._config.plateau_epochs_to_germinate
        signals = []
        if before.plateau_epochs < needed <= after.plateau_epochs:
            signals.append(PLATEAU)
        if before.plateau_epochs >= needed and after.plateau_epochs == 0:
            signals.append(PLATEAU_ENDED)
        if after.stabilized and not before.stabilized:
            signals.append(STABILIZED)
        return signals


class EpochLog:
    """Writes the ``epoch`` event of every step and the ``host`` events it raises."""

    def __init__(self, directory: RunDirectory) -> None:
        self._directory = directory
        self._host = HostSignals()

    def log(self, result: StepResult, **episode: object) -> None:
        """``episode`` names the episode first: ``controller`` and ``episode`` in episode runs, ``round`` and
        ``env`` (the episode's index within its round) in PPO runs."""
        observation = result.observation
        self._directory.event(
            "epoch",
            **episode,
            epoch=observation.epoch,
            val_accuracy=observation.val_accuracy,
            reward=result.reward,
            op=result.action.op.name,
            slot=result.action.slot,
            success=result.action_success,
            lifecycle=[event.as_dict() for event in result.events],
        )
        for signal in self._host.observe(tuple(episode.values()), result):
            self._directory.event(
                "host", **episode, epoch=observation.epoch, signal=signal, val_accuracy=observation.val_accuracy
            )
