"""Demonstrations for a warm start: any leyline ``Controller`` acting, recorded as the policy would store it.

Behaviour cloning needs what the policy would have seen (its own encoded inputs and masks) next to what the
demonstrator did. ``DemonstratorSteps`` lets the demonstrator choose every action while the policy only encodes,
and writes each step in the policy's storage format: the demonstrator's action as head indices, scored under the
masks the policy itself would have sampled that action from (the op's slot mask; a single placeholder for each
head the op ignores, as leyline's ``HEAD_PLACEHOLDERS`` define). ``collect_rollouts`` then runs it through the
same loop and buffer as a PPO round, so the clone and the PPO update read the same tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from esper.leyline import (
    HEAD_INDEX,
    HEAD_ORDER,
    HEAD_PLACEHOLDERS,
    ActionHead,
    ActionMasks,
    ActionResult,
    Controller,
    EnvObservation,
    EpisodeEnvs,
    ExplainingController,
    FactoredAction,
    InvalidStateMachineError,
    PolicyBundle,
    head_sizes,
    is_relevant,
    mask_width,
)
from esper.simic.envs.episode_records import EpisodeSummary, StepResult
from esper.simic.envs.pools import EnvPool
from esper.simic.episode_loop import StepObserver
from esper.simic.policy_controller import PolicyStep
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.training import collect_rollouts


class DemonstratorSteps:
    """A ``Controller`` choosing the actions, a ``PolicyBundle`` encoding what it saw (no policy decision)."""

    def __init__(self, demonstrator: Controller, bundle: PolicyBundle) -> None:
        self.demonstrator = demonstrator
        self.bundle = bundle
        self._envs = EpisodeEnvs(f"demonstrations of {demonstrator.name}")

    @property
    def name(self) -> str:
        return self.demonstrator.name

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)
        self.demonstrator.start_episodes(n_envs)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        return self.step(env_ids, observations).actions

    def explain(self, env_id: int) -> Mapping[str, object]:
        """The demonstrator's own explanation when it gives one, else only that it was demonstrated."""
        if isinstance(self.demonstrator, ExplainingController):
            return self.demonstrator.explain(env_id)
        return {"rule": "demonstrated", "demonstrator": self.demonstrator.name}

    def step(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> PolicyStep:
        self._envs.check(env_ids, observations)
        encoded = self.bundle.encode(observations)
        actions = self.demonstrator.act(env_ids, observations)
        result = demonstrated_result(actions, encoded.masks, self.bundle)
        return PolicyStep(encoded, result, actions)


def demonstrated_result(actions: Sequence[FactoredAction], masks: ActionMasks, bundle: PolicyBundle) -> ActionResult:
    """The demonstrator's ``actions`` as a policy's ``ActionResult``: head indices and the op-conditioned masks
    the policy scores them under. Log-probs and values are 0 (the demonstrator has neither). An action its masks
    forbid raises ``InvalidStateMachineError``: the environment would refuse it, so nothing may learn it."""
    topology = bundle.topology
    rows = [action.canonical().head_indices(topology) for action in actions]
    batch = torch.arange(len(rows))
    chosen = torch.tensor([[row[head] for head in HEAD_ORDER] for row in rows], dtype=torch.int64)
    ops = chosen[:, HEAD_INDEX[ActionHead.OP]]
    # Which heads each demonstrated op reads: leyline's table (the demonstrator is not the policy).
    relevant = torch.tensor([[is_relevant(action.op, head) for head in HEAD_ORDER] for action in actions])
    slot_masks = masks.slot_by_op.cpu()[batch, ops]
    observed = {**{h: m.cpu() for h, m in masks.heads.items()}, ActionHead.OP: masks.op.cpu()}
    observed[ActionHead.SLOT] = slot_masks
    stored = torch.zeros(len(rows), len(HEAD_ORDER), mask_width(masks.head_sizes), dtype=torch.bool)
    for column, head in enumerate(HEAD_ORDER):
        size = masks.head_sizes[head]
        placeholder = (
            slot_masks.int().argmax(dim=1)
            if head is ActionHead.SLOT
            else torch.full((len(rows),), HEAD_PLACEHOLDERS.get(head, 0), dtype=torch.int64)
        )
        chosen[:, column] = torch.where(relevant[:, column], chosen[:, column], placeholder)
        one_hot = torch.nn.functional.one_hot(placeholder, size).bool()
        stored[:, column, :size] = torch.where(relevant[:, column : column + 1], observed[head], one_hot)
        if not bool(stored[batch, column, chosen[:, column]].all()):
            raise InvalidStateMachineError(f"a demonstrated action is forbidden by the {head.value} mask")
    zeros = torch.zeros(len(rows), device=bundle.device)
    return ActionResult(
        actions=chosen.to(bundle.device),
        log_probs=torch.zeros(len(rows), len(HEAD_ORDER), device=bundle.device),
        masks=stored.to(bundle.device),
        relevant=relevant.to(bundle.device),
        values=zeros,
        hidden=bundle.initial_hidden(len(rows)),
    )


def collect_demonstrations(
    pool: EnvPool,
    bundle: PolicyBundle,
    demonstrator: Controller,
    seeds: Sequence[int],
    max_steps: int,
    on_step: StepObserver | None = None,
) -> tuple[RolloutBuffer, list[EpisodeSummary]]:
    """Run ``demonstrator`` on one episode per seed (``pool.n_envs`` at a time) and return every step in one
    buffer (a row per seed, in order) with the episodes' summaries. ``on_step`` sees each step's results with the
    index of the episode (into ``seeds``) each belongs to."""
    sizes = head_sizes(bundle.slot_config, bundle.topology)
    buffers: list[RolloutBuffer] = []
    episodes: list[EpisodeSummary] = []
    for start in range(0, len(seeds), pool.n_envs):
        chunk = list(seeds[start : start + pool.n_envs])
        buffer = RolloutBuffer(len(chunk), max_steps, sizes, bundle.initial_hidden(len(chunk)))
        observer = None if on_step is None else _offset(on_step, start)
        episodes.extend(collect_rollouts(pool, DemonstratorSteps(demonstrator, bundle), chunk, buffer, observer))
        buffers.append(buffer)
    return RolloutBuffer.concatenate(buffers), episodes


def _offset(on_step: StepObserver, first: int) -> StepObserver:
    def observe(env_ids: Sequence[int], results: Sequence[StepResult]) -> None:
        on_step([first + env for env in env_ids], results)

    return observe
