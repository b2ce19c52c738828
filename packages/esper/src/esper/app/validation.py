"""Periodic deterministic validation of a PPO run, and the best policy it has seen (``checkpoints/best.pt``).

Every ``[run] validate_every`` rounds, and after the last round, the argmax policy plays ``[run]
validation_episodes`` episodes on selection seeds: training-range seeds of their own stream, never evaluation
seeds, the same at every validation of the run. Its score is the mean final validation accuracy (the test split is
never looked at). A score above every earlier one replaces ``best.pt`` (atomically), a full checkpoint whose
``config`` records the round and score under ``validation``, so a resumed run keeps its best-so-far score.

Validation changes nothing the training computes: the argmax draws no random number, the episodes are fixed by
their seeds, the policy is only read, and the global random state is restored afterwards anyway.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esper.leyline import CheckpointError, PolicyBundle
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint, save_checkpoint
from esper.simic.envs.episode_seeds import selection_episode_seeds
from esper.simic.envs.pools import EnvPool
from esper.simic.episode_loop import run_episodes
from esper.simic.policy_controller import PolicyController

#: The key of a best checkpoint's ``config`` that records the validation it won.
VALIDATION_KEY = "validation"


@dataclass(frozen=True)
class ValidationResult:
    round_index: int
    val_accuracies: tuple[float, ...]
    params_added: tuple[int, ...]
    seconds: float

    @property
    def mean_val_accuracy(self) -> float:
        return sum(self.val_accuracies) / len(self.val_accuracies)

    @property
    def mean_params_added(self) -> float:
        return sum(self.params_added) / len(self.params_added)


def validation_due(round_index: int, every: int, rounds: int) -> bool:
    """After every ``every``-th round and after the last one."""
    return (round_index + 1) % every == 0 or round_index + 1 == rounds


def validate(bundle: PolicyBundle, pool: EnvPool, run_seed: int, episodes: int, round_index: int) -> ValidationResult:
    """The argmax policy on ``episodes`` selection seeds of the run."""
    started = time.perf_counter()
    controller = PolicyController(bundle, deterministic=True, name="validation")
    with torch.random.fork_rng(devices=[]):
        summaries = run_episodes(pool, controller, selection_episode_seeds(run_seed, episodes))
    return ValidationResult(
        round_index,
        tuple(s.final_val_accuracy for s in summaries),
        tuple(s.params_added for s in summaries),
        time.perf_counter() - started,
    )


def best_score(path: Path) -> float | None:
    """The score recorded in a best checkpoint, or None when there is none yet."""
    if not path.is_file():
        return None
    record = load_checkpoint(path).config.get(VALIDATION_KEY)
    score = record.get("mean_val_accuracy") if isinstance(record, dict) else None
    if not isinstance(score, float) or not math.isfinite(score):
        raise CheckpointError(f"{path} does not record the validation score that made it the best")
    return score


def save_best(path: Path, checkpoint: TrainingCheckpoint, result: ValidationResult) -> None:
    record: dict[str, Any] = {"round": result.round_index, "mean_val_accuracy": result.mean_val_accuracy}
    checkpoint.config = {**checkpoint.config, VALIDATION_KEY: record}
    save_checkpoint(path, checkpoint)
