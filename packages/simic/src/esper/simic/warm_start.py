"""A PPO run's warm start: a demonstrator plays training-range episodes, then the policy clones it.

Everything is drawn from the run seed (the demonstration seeds, the cloning minibatch order), so the same command
gives the same cloned policy; a resumed run does not repeat it (its checkpoint already holds the clone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from esper.leyline import Controller
from esper.simic.demonstrations import collect_demonstrations
from esper.simic.envs.episode_records import EpisodeSummary
from esper.simic.envs.episode_seeds import cloning_seed, demonstration_episode_seeds
from esper.simic.episode_loop import StepObserver
from esper.simic.ppo.cloning import CloningConfig, CloningStats, clone
from esper.simic.training import PPOTraining


@dataclass(frozen=True)
class WarmStartReport:
    demonstrator: str
    episodes: list[EpisodeSummary]
    cloning: CloningStats
    seconds: float

    @property
    def mean_final_val_accuracy(self) -> float:
        return sum(e.final_val_accuracy for e in self.episodes) / len(self.episodes)


def warm_start(
    training: PPOTraining,
    demonstrator: Controller,
    episodes: int,
    config: CloningConfig,
    on_step: StepObserver | None = None,
) -> WarmStartReport:
    """Clone ``demonstrator`` into ``training``'s policy before its first round (its optimizer and return
    normalizer carry the clone's state into PPO). ``on_step`` observes the demonstrated episodes."""
    started = time.perf_counter()
    run = training.run_settings
    seeds = demonstration_episode_seeds(run.seed, episodes)
    buffer, summaries = collect_demonstrations(
        training.pool, training.bundle, demonstrator, seeds, run.episode_epochs, on_step
    )
    stats = clone(training.updater, buffer, config, torch.Generator().manual_seed(cloning_seed(run.seed)))
    return WarmStartReport(demonstrator.name, summaries, stats, time.perf_counter() - started)
