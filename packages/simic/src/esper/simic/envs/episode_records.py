"""What an environment reports: per-step results, lifecycle events, and the summary of a finished episode."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from esper.leyline import EnvObservation, FactoredAction, SeedStage
from esper.simic.envs.rewards import RewardTerms


@dataclass(frozen=True)
class LifecycleEvent:
    """A slot changed stage during ``epoch`` (the epoch whose step caused it)."""

    epoch: int
    slot: str
    source: SeedStage
    target: SeedStage
    blueprint: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "slot": self.slot,
            "from": self.source.name,
            "to": self.target.name,
            "blueprint": self.blueprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LifecycleEvent:
        return cls(data["epoch"], data["slot"], SeedStage[data["from"]], SeedStage[data["to"]], data["blueprint"])


@dataclass(frozen=True)
class StepResult:
    """Outcome of one RL step: the action was executed, slots ticked, one epoch trained and validated."""

    observation: EnvObservation
    reward: float
    reward_terms: RewardTerms
    terminal: bool
    action: FactoredAction
    action_success: bool
    action_detail: str
    train_loss: float
    rolled_back: bool
    events: tuple[LifecycleEvent, ...]


@dataclass(frozen=True)
class EpisodeSummary:
    """One finished episode. Accuracies in percent; ``params_added`` counts the seeds that change the output at
    the end (alpha > 0 or fossilized), as the rent does: a seed that never blended adds nothing.

    ``test_accuracy`` is the held-out test set's verdict on the model the episode ended with (the episode's
    reported result); every ``val_`` figure comes from the validation set the controller and reward saw.
    """

    seed: int
    epochs_run: int
    test_accuracy: float
    initial_val_accuracy: float
    final_val_accuracy: float
    best_val_accuracy: float
    host_params: int
    params_added: int
    germinated: int
    fossilized: int
    pruned: int
    invalid_actions: int
    rolled_back: bool
    rollback_reason: str | None
    total_reward: float
    val_accuracy_curve: tuple[float, ...]
    op_counts: dict[str, int]
    events: tuple[LifecycleEvent, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["events"] = [event.as_dict() for event in self.events]
        out["val_accuracy_curve"] = list(self.val_accuracy_curve)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeSummary:
        """The summary ``as_dict`` wrote (an episode event of a run's log); unknown keys are ignored, so an event
        may carry extra fields such as its round."""
        values = {name: data[name] for name in cls.__dataclass_fields__}
        values["val_accuracy_curve"] = tuple(data["val_accuracy_curve"])
        values["events"] = tuple(LifecycleEvent.from_dict(event) for event in data["events"])
        return cls(**values)
