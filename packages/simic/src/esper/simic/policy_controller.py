"""Run a ``PolicyBundle`` as a leyline ``Controller``: per-env hidden state, optional rollout recording.

This is how a learned policy goes through the same vectorized loop as the heuristic and the baselines.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from esper.leyline import HEAD_ORDER, EnvObservation, FactoredAction, InvalidStateMachineError, PolicyBundle
from esper.leyline.protocols import HiddenState
from esper.simic.rollout_buffer import RolloutBuffer


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
        self.recorder: RolloutBuffer | None = None

    @property
    def name(self) -> str:
        return self._name

    def start_episodes(self, n_envs: int) -> None:
        self._hidden = self.bundle.initial_hidden(n_envs)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
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
        if self.recorder is not None:
            self.recorder.record_action(env_ids, encoded, result)
        columns = torch.stack([result.actions[head] for head in HEAD_ORDER], dim=1).cpu().tolist()
        return [
            FactoredAction.from_head_indices(dict(zip(HEAD_ORDER, row, strict=True)), self.bundle.topology)
            for row in columns
        ]
