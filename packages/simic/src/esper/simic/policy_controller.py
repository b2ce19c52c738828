"""Run a ``PolicyBundle`` as a leyline ``Controller``: per-env hidden state kept between steps.

This is how a learned policy goes through the same episode loop as the heuristic and the baselines; PPO's
collection loop calls ``step`` instead of ``act`` to keep what the policy saw and returned for its buffer. With
``explain`` it is an ``ExplainingController``: each step asks the bundle for its op probabilities and per-head
entropies (nothing is drawn for them, so the actions are the same) and keeps, per env, a plain record of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from esper.leyline import (
    HEAD_ORDER,
    ActionHead,
    ActionResult,
    EncodedObservations,
    EnvObservation,
    EpisodeEnvs,
    FactoredAction,
    InvalidStateMachineError,
    LifecycleOp,
    PolicyBundle,
    PolicyContractError,
    is_relevant,
)
from esper.leyline.protocols import HiddenState


@dataclass(frozen=True)
class PolicyStep:
    """One step of a learned policy for a batch of envs: its encoded inputs, its result and the chosen actions
    (rows in the order of the env ids it was given)."""

    encoded: EncodedObservations
    result: ActionResult
    actions: list[FactoredAction]


class PolicyController:
    """A learned controller. ``deterministic`` takes each head's argmax instead of sampling."""

    def __init__(
        self,
        bundle: PolicyBundle,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        name: str | None = None,
        explain: bool = False,
    ) -> None:
        self.bundle = bundle
        self.deterministic = deterministic
        self.generator = generator
        self.explains = explain
        self._name = name or f"{bundle.kind}-{'deterministic' if deterministic else 'stochastic'}"
        self._envs = EpisodeEnvs(self._name)
        self._hidden: HiddenState | None = None
        self._explanations: dict[int, dict[str, object]] = {}

    @property
    def name(self) -> str:
        return self._name

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)
        self._hidden = self.bundle.initial_hidden(n_envs)
        self._explanations = {}

    def explain(self, env_id: int) -> dict[str, object]:
        """The env's last decision: the probabilities of the allowed ops, each relevant head's choice with its
        probability and normalized entropy, and the value estimate (in the policy's normalized return units)."""
        if not self.explains:
            raise InvalidStateMachineError(f"{self.name}: explain() needs a PolicyController(..., explain=True)")
        if env_id not in self._explanations:
            raise InvalidStateMachineError(f"{self.name}: explain({env_id}) before the env's first step")
        return self._explanations[env_id]

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        return self.step(env_ids, observations).actions

    def step(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> PolicyStep:
        """Encode, act and advance the hidden state of ``env_ids``; ``act`` without discarding the tensors."""
        self._envs.check(env_ids, observations)
        state = cast("HiddenState", self._hidden)  # set by start_episodes, which check() proved has run
        encoded = self.bundle.encode(observations)
        rows = torch.as_tensor(list(env_ids), dtype=torch.int64, device=state[0].device)
        hidden = (state[0][:, rows], state[1][:, rows])
        result = self.bundle.get_action(encoded, hidden, self.deterministic, self.generator, explain=self.explains)
        state[0][:, rows] = result.hidden[0]
        state[1][:, rows] = result.hidden[1]
        actions = [
            FactoredAction.from_head_indices(dict(zip(HEAD_ORDER, row, strict=True)), self.bundle.topology)
            for row in result.actions.cpu().tolist()
        ]
        if self.explains:
            self._remember_explanations(env_ids, encoded, result, actions)
        return PolicyStep(encoded, result, actions)

    def _remember_explanations(
        self,
        env_ids: Sequence[int],
        encoded: EncodedObservations,
        result: ActionResult,
        actions: list[FactoredAction],
    ) -> None:
        explanation = result.explanation
        if explanation is None:
            raise PolicyContractError(f"{self.bundle.kind}: get_action(explain=True) returned no explanation")
        allowed = encoded.masks.op.cpu().tolist()
        op_probabilities = explanation.op_probabilities.float().cpu().tolist()
        probabilities = result.log_probs.float().exp().cpu().tolist()
        entropy = explanation.entropy.float().cpu().tolist()
        values = result.values.float().cpu().tolist()
        slot_names = self.bundle.slot_config.names()
        for row, (env, action) in enumerate(zip(env_ids, actions, strict=True)):
            heads = {
                head.value: {
                    "choice": _choice(action, head, slot_names),
                    "probability": probabilities[row][column],
                    "entropy": entropy[row][column],
                }
                for column, head in enumerate(HEAD_ORDER)
                if is_relevant(action.op, head)
            }
            row_allowed = zip(op_probabilities[row], allowed[row], strict=True)
            self._explanations[env] = {
                "op_probabilities": {LifecycleOp(op).name: p for op, (p, ok) in enumerate(row_allowed) if ok},
                "heads": heads,
                "value": values[row],
            }


def _choice(action: FactoredAction, head: ActionHead, slot_names: Sequence[str]) -> str:
    """A head's choice by name: the slot's name, the blueprint's registry name, the other enums' names."""
    if head is ActionHead.SLOT:
        return slot_names[action.slot]
    if head is ActionHead.BLUEPRINT:
        return action.blueprint.registry_name
    value = getattr(action, head.value)
    return str(value.name)
