"""The ``epoch`` event: one line of ``events.jsonl`` per episode step, written the same way by every command."""

from __future__ import annotations

from esper.app.run_directory import RunDirectory
from esper.simic.envs.episode_records import StepResult


def log_epoch(directory: RunDirectory, result: StepResult, **episode: object) -> None:
    """What one step did and how the epoch ended. ``episode`` names the episode first: ``controller`` and
    ``episode`` in evaluation runs, ``round`` and ``env`` (the episode's index within its round) in PPO runs."""
    directory.event(
        "epoch",
        **episode,
        epoch=result.observation.epoch,
        val_accuracy=result.observation.val_accuracy,
        reward=result.reward,
        op=result.action.op.name,
        slot=result.action.slot,
        success=result.action_success,
    )
