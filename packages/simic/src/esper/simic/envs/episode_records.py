"""What an environment reports: per-step results, lifecycle events, and the summary of a finished episode."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from esper.leyline import EnvObservation, FactoredAction, SeedStage
from esper.simic.envs.rewards import RewardTerms


@dataclass(frozen=True)
class LifecycleEvent:
    """A slot changed stage during ``epoch`` (the epoch whose step caused it: the epoch of the observation the
    controller acted on). ``params`` and ``contribution`` (percentage points, None if never measured) describe
    the seed as the controller saw it before the step, or after it for a germination, which creates the seed."""

    epoch: int
    slot: str
    source: SeedStage
    target: SeedStage
    blueprint: str | None
    params: int | None
    contribution: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "slot": self.slot,
            "from": self.source.name,
            "to": self.target.name,
            "blueprint": self.blueprint,
            "params": self.params,
            "contribution": self.contribution,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LifecycleEvent:
        return cls(
            data["epoch"],
            data["slot"],
            SeedStage[data["from"]],
            SeedStage[data["to"]],
            data["blueprint"],
            data["params"],
            data["contribution"],
        )


@dataclass(frozen=True)
class SeedAtEnd:
    """A seed the episode ended with: its parameters, its last measured contribution (percentage points, None if
    never measured) and whether it changes the output (alpha > 0 or fossilized; only those count as added)."""

    slot: str
    blueprint: str
    stage: SeedStage
    params: int
    contribution: float | None
    affects_output: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stage": self.stage.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedAtEnd:
        return cls(
            data["slot"],
            data["blueprint"],
            SeedStage[data["stage"]],
            data["params"],
            data["contribution"],
            data["affects_output"],
        )


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
    seeds_at_end: tuple[SeedAtEnd, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["events"] = [event.as_dict() for event in self.events]
        out["seeds_at_end"] = [seed.as_dict() for seed in self.seeds_at_end]
        out["val_accuracy_curve"] = list(self.val_accuracy_curve)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeSummary:
        """The summary ``as_dict`` wrote (an episode event of a run's log); unknown keys are ignored, so an event
        may carry extra fields such as its round."""
        values = {name: data[name] for name in cls.__dataclass_fields__}
        values["val_accuracy_curve"] = tuple(data["val_accuracy_curve"])
        values["events"] = tuple(LifecycleEvent.from_dict(event) for event in data["events"])
        values["seeds_at_end"] = tuple(SeedAtEnd.from_dict(seed) for seed in data["seeds_at_end"])
        return cls(**values)
