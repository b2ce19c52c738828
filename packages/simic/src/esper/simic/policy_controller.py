"""Run a ``PolicyBundle`` as a leyline ``Controller``: per-env hidden state kept between steps.

This is how a learned policy goes through the same episode loop as the heuristic and the baselines; PPO's
collection loop calls ``step`` instead of ``act`` to keep what the policy saw and returned for its buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from esper.leyline import (
    HEAD_ORDER,
    ActionResult,
    EncodedObservations,
    EnvObservation,
    FactoredAction,
    InvalidStateMachineError,
    PolicyBundle,
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
    ) -> None:
        self.bundle = bundle
        self.deterministic = deterministic
        self.generator = generator
        self._name = name or f"{bundle.kind}-{'deterministic' if deterministic else 'stochastic'}"
        self._hidden: HiddenState | None = None

    @property
    def name(self) -> str:
        return self._name

    def start_episodes(self, n_envs: int) -> None:
        self._hidden = self.bundle.initial_hidden(n_envs)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        return self.step(env_ids, observations).actions

    def step(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> PolicyStep:
        """Encode, act and advance the hidden state of ``env_ids``; ``act`` without discarding the tensors."""
        if self._hidden is None:
            raise InvalidStateMachineError("PolicyController.act() called before start_episodes()")
        if len(env_ids) != len(observations):
            raise ValueError(f"{len(env_ids)} env ids for {len(observations)} observations")
        encoded = self.bundle.encode(observations)
        rows = torch.as_tensor(list(env_ids), dtype=torch.int64, device=self._hidden[0].device)
        hidden = (self._hidden[0][:, rows], self._hidden[1][:, rows])
        result = self.bundle.get_action(encoded, hidden, self.deterministic, self.generator)
        self._hidden[0][:, rows] = result.hidden[0]
        self._hidden[1][:, rows] = result.hidden[1]
        columns = torch.stack([result.actions[head] for head in HEAD_ORDER], dim=1).cpu().tolist()
        actions = [
            FactoredAction.from_head_indices(dict(zip(HEAD_ORDER, row, strict=True)), self.bundle.topology)
            for row in columns
        ]
        return PolicyStep(encoded, result, actions)
