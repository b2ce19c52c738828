"""The episode loop: any leyline ``Controller`` drives a batch of episodes through an ``EnvPool``.

Heuristic, random, static and learned controllers all go through ``run_episodes``. PPO's collection
(``esper.simic.training.collect_rollouts``) is the same loop for one batch of episodes, with the policy's tensors
kept: each step is written to the rollout buffer in one ``add``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from esper.leyline import ConfigError, Controller, EnvObservation, ExplainingController, FactoredAction
from esper.simic.envs.episode_records import EpisodeSummary, StepResult
from esper.simic.envs.pools import EnvPool

#: Called after every step with the episodes that stepped, as indices into the run's episode seeds, and their
#: results (same order). The loop reuses envs across batches of episodes; observers never see env ids.
StepObserver = Callable[[Sequence[int], Sequence[StepResult]], None]


@dataclass(frozen=True)
class ExplainedDecision:
    """One decision of an ``ExplainingController``: the episode (as for ``StepObserver``), the epoch of the
    observation it acted on, the action and what the controller said of it."""

    episode: int
    epoch: int
    action: FactoredAction
    explanation: Mapping[str, object]


#: Called after every decision, before it is executed. Observing reads only: the episodes are the same.
DecisionObserver = Callable[[Sequence[ExplainedDecision]], None]


def explained(
    controller: ExplainingController,
    env_ids: Sequence[int],
    episodes: Sequence[int],
    observations: Sequence[EnvObservation],
    actions: Sequence[FactoredAction],
) -> list[ExplainedDecision]:
    """What ``controller`` says of the decisions it just took for ``env_ids`` (episodes ``episodes``)."""
    return [
        ExplainedDecision(episode, observation.epoch, action, controller.explain(env_id))
        for env_id, episode, observation, action in zip(env_ids, episodes, observations, actions, strict=True)
    ]


def run_episodes(
    pool: EnvPool,
    controller: Controller,
    seeds: Sequence[int],
    on_step: StepObserver | None = None,
    on_decisions: DecisionObserver | None = None,
) -> list[EpisodeSummary]:
    """Run one episode per seed, ``pool.n_envs`` at a time; summaries come back in seed order. ``on_decisions``
    needs an ``ExplainingController``."""
    if not seeds:
        raise ConfigError("run_episodes needs at least one episode seed")
    if on_decisions is not None and not isinstance(controller, ExplainingController):
        raise ConfigError(f"controller {controller.name!r} cannot explain its decisions (no explain method)")
    summaries: list[EpisodeSummary] = []
    for start in range(0, len(seeds), pool.n_envs):
        batch = list(seeds[start : start + pool.n_envs])
        summaries.extend(_run_batch(pool, controller, batch, start, on_step, on_decisions))
    return summaries


def _run_batch(
    pool: EnvPool,
    controller: Controller,
    seeds: list[int],
    first_episode: int,
    on_step: StepObserver | None,
    on_decisions: DecisionObserver | None,
) -> list[EpisodeSummary]:
    """Episodes ``first_episode ..`` of the run, one per env (env i plays episode ``first_episode + i``)."""
    env_ids = list(range(len(seeds)))
    observations = dict(zip(env_ids, pool.reset(env_ids, seeds), strict=True))
    controller.start_episodes(len(seeds))
    active = env_ids
    while active:
        seen = [observations[i] for i in active]
        actions = controller.act(active, seen)
        if on_decisions is not None and isinstance(controller, ExplainingController):
            on_decisions(explained(controller, active, [first_episode + i for i in active], seen, actions))
        results = pool.step(active, actions)
        if on_step is not None:
            on_step([first_episode + env_id for env_id in active], results)
        for env_id, result in zip(active, results, strict=True):
            observations[env_id] = result.observation
        active = [env_id for env_id, result in zip(active, results, strict=True) if not result.terminal]
    return pool.summaries(env_ids)
