"""Run a ``PolicyBundle`` as a leyline ``Controller``: per-env hidden state kept between steps.

This is how a learned policy goes through the same episode loop as the heuristic and the baselines; PPO's
collection loop calls ``step`` instead of ``act`` to keep what the policy saw and returned for its buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from esper.leyline import (
    HEAD_ORDER,
    ActionResult,
    EncodedObservations,
    EnvObservation,
    EpisodeEnvs,
    FactoredAction,
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
        self._envs = EpisodeEnvs(self._name)
        self._hidden: HiddenState | None = None

    @property
    def name(self) -> str:
        return self._name

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)
        self._hidden = self.bundle.initial_hidden(n_envs)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        return self.step(env_ids, observations).actions

    def step(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> PolicyStep:
        """Encode, act and advance the hidden state of ``env_ids``; ``act`` without discarding the tensors."""
        self._envs.check(env_ids, observations)
        state = cast("HiddenState", self._hidden)  # set by start_episodes, which check() proved has run
        encoded = self.bundle.encode(observations)
        rows = torch.as_tensor(list(env_ids), dtype=torch.int64, device=state[0].device)
        hidden = (state[0][:, rows], state[1][:, rows])
        result = self.bundle.get_action(encoded, hidden, self.deterministic, self.generator)
        state[0][:, rows] = result.hidden[0]
        state[1][:, rows] = result.hidden[1]
        columns = torch.stack([result.actions[head] for head in HEAD_ORDER], dim=1).cpu().tolist()
        actions = [
            FactoredAction.from_head_indices(dict(zip(HEAD_ORDER, row, strict=True)), self.bundle.topology)
            for row in columns
        ]
        return PolicyStep(encoded, result, actions)
