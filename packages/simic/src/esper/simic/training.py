"""PPO training rounds: collect one episode per env with the current policy, update, checkpoint, repeat.

Collection is SB3's shape: each step the policy encodes and acts, the env pool steps, and the whole transition is
written to the buffer in one ``add``. Every source of randomness of a round (episode seeds, action sampling,
minibatch order) is derived from the run seed and the round index, so a resumed run continues exactly where an
uninterrupted one would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from esper.leyline import ConfigError, EnvObservation, ExplainingController, PolicyBundle, head_sizes
from esper.simic.checkpoints import TrainingCheckpoint, capture_rng_states, restore_rng_states, save_checkpoint
from esper.simic.envs.episode_records import EpisodeSummary
from esper.simic.envs.episode_seeds import minibatch_seed, sampling_seed, training_episode_seeds
from esper.simic.envs.pools import EnvPool
from esper.simic.episode_loop import DecisionObserver, StepObserver, explained
from esper.simic.policy_controller import PolicyController, PolicyStep
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.ppo.stats import UpdateStats
from esper.simic.ppo.updater import PPOConfig, PPOUpdater

#: Called with each round's complete buffer just before the update consumes it (tests and diagnostics read what
#: the update is about to score; the statistics of the update itself arrive in the ``RoundReport``).
UpdateObserver = Callable[[RolloutBuffer], None]


class StepController(ExplainingController, Protocol):
    """What the collection loop drives: a learned policy acting (``PolicyController``) or a demonstrator acting
    while the policy only encodes (``demonstrations.DemonstratorSteps``). ``step`` is ``act`` that also returns
    what the buffer stores."""

    def step(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> PolicyStep: ...


@dataclass(frozen=True)
class PPORunConfig:
    rounds: int
    n_envs: int
    episode_epochs: int
    seed: int
    ppo: PPOConfig

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.n_envs < 1 or self.episode_epochs < 1:
            raise ConfigError(
                f"rounds, envs and epochs must be >= 1, got {self.rounds}, {self.n_envs}, {self.episode_epochs}"
            )


@dataclass(frozen=True)
class RoundReport:
    round_index: int
    episodes: list[EpisodeSummary]
    update: UpdateStats
    seconds: float

    @property
    def mean_final_val_accuracy(self) -> float:
        return sum(e.final_val_accuracy for e in self.episodes) / len(self.episodes)

    @property
    def mean_test_accuracy(self) -> float:
        return sum(e.test_accuracy for e in self.episodes) / len(self.episodes)

    @property
    def mean_reward(self) -> float:
        return sum(e.total_reward for e in self.episodes) / len(self.episodes)


class PPOTraining:
    """Owns the updater of an injected bundle and drives rounds through an env pool."""

    def __init__(
        self,
        bundle: PolicyBundle,
        pool: EnvPool,
        run: PPORunConfig,
        *,
        checkpoint_path: Path | None,
        run_config: dict[str, Any],
    ) -> None:
        if pool.n_envs != run.n_envs:
            raise ConfigError(f"the pool holds {pool.n_envs} envs but the run asks for {run.n_envs}")
        self.bundle = bundle
        self.pool = pool
        self.run_settings = run
        self.checkpoint_path = checkpoint_path
        self.run_config = run_config
        self.updater = PPOUpdater(bundle, run.ppo, total_rounds=run.rounds)
        self.rounds_completed = 0

    def resume(self, checkpoint: TrainingCheckpoint) -> None:
        """Continue from ``checkpoint``: policy, optimizer, normalizers, RNG states and round counter."""
        if checkpoint.rounds_completed > self.run_settings.rounds:
            raise ConfigError(
                f"the checkpoint has {checkpoint.rounds_completed} rounds, "
                f"more than the {self.run_settings.rounds} asked"
            )
        self.bundle.load_state_dict(checkpoint.policy_state)
        self.updater.load_state_dict(checkpoint.updater_state)
        restore_rng_states(checkpoint.rng)
        self.rounds_completed = checkpoint.rounds_completed

    def run(
        self,
        on_round: Callable[[RoundReport], None] | None = None,
        on_step: StepObserver | None = None,
        stop_after: int | None = None,
        time_budget_seconds: float | None = None,
        on_update: UpdateObserver | None = None,
        on_decisions: DecisionObserver | None = None,
    ) -> list[RoundReport]:
        """Run the remaining rounds (at most ``stop_after`` of them), checkpointing after each update.

        ``on_round`` (the caller's log) sees a round before its checkpoint is written: a process killed in between
        leaves a log one round ahead of the checkpoint, never behind it, and resume trains that round again.
        With a time budget, a round is started only if the mean duration of this session's rounds says it will
        finish within the budget; the run then stops at a checkpoint and ``--resume`` can continue it.
        ``on_decisions`` sees what the policy says of each decision (it explains them only when observed).
        """
        reports: list[RoundReport] = []
        end = self.run_settings.rounds
        if stop_after is not None:
            end = min(end, self.rounds_completed + stop_after)
        started = time.perf_counter()
        for round_index in range(self.rounds_completed, end):
            if time_budget_seconds is not None and reports:
                elapsed = time.perf_counter() - started
                if elapsed + elapsed / len(reports) > time_budget_seconds:
                    break
            report = self.run_round(round_index, on_step, on_update, on_decisions)
            self.rounds_completed = round_index + 1
            reports.append(report)
            state = self.checkpoint()  # taken before the caller's logging can touch any global RNG
            if on_round is not None:
                on_round(report)
            if self.checkpoint_path is not None:
                save_checkpoint(self.checkpoint_path, state)
        return reports

    def run_round(
        self,
        round_index: int,
        on_step: StepObserver | None = None,
        on_update: UpdateObserver | None = None,
        on_decisions: DecisionObserver | None = None,
    ) -> RoundReport:
        started = time.perf_counter()
        run = self.run_settings
        bundle = self.bundle
        controller = PolicyController(
            bundle,
            generator=torch.Generator(device=bundle.device).manual_seed(sampling_seed(run.seed, round_index)),
            explain=on_decisions is not None,
        )
        buffer = RolloutBuffer(
            run.n_envs,
            run.episode_epochs,
            head_sizes(bundle.slot_config, bundle.topology),
            bundle.initial_hidden(run.n_envs),
        )
        seeds = training_episode_seeds(run.seed, round_index, run.n_envs)
        episodes = collect_rollouts(self.pool, controller, seeds, buffer, on_step, on_decisions)
        if on_update is not None:
            on_update(buffer)
        stats = self.updater.update(buffer, torch.Generator().manual_seed(minibatch_seed(run.seed, round_index)))
        return RoundReport(round_index, episodes, stats, time.perf_counter() - started)

    def checkpoint(self) -> TrainingCheckpoint:
        return TrainingCheckpoint(
            rounds_completed=self.rounds_completed,
            policy_state=self.bundle.state_dict(),
            policy_build_config=self.bundle.build_config(),
            updater_state=self.updater.state_dict(),
            rng=capture_rng_states(),
            config=self.run_config,
        )


def collect_rollouts(
    pool: EnvPool,
    controller: StepController,
    seeds: Sequence[int],
    buffer: RolloutBuffer,
    on_step: StepObserver | None = None,
    on_decisions: DecisionObserver | None = None,
) -> list[EpisodeSummary]:
    """One episode per env of the pool (``seeds`` in env order), every transition written to ``buffer`` once.

    The loop of ``episode_loop.run_episodes`` with the policy's tensors kept: an env whose episode ended is left out
    of the following steps, its buffer row padded.
    """
    env_ids = list(range(len(seeds)))
    observations = dict(zip(env_ids, pool.reset(env_ids, seeds), strict=True))
    controller.start_episodes(len(seeds))
    active = env_ids
    while active:
        seen = [observations[i] for i in active]
        step = controller.step(active, seen)
        if on_decisions is not None:
            on_decisions(explained(controller, active, active, seen, step.actions))
        results = pool.step(active, step.actions)
        rewards, terminals = [r.reward for r in results], [r.terminal for r in results]
        buffer.add(active, step.encoded.inputs, step.result, rewards, terminals)
        if on_step is not None:
            on_step(active, results)
        for env_id, result in zip(active, results, strict=True):
            observations[env_id] = result.observation
        active = [env_id for env_id, terminal in zip(active, terminals, strict=True) if not terminal]
    return pool.summaries(env_ids)
