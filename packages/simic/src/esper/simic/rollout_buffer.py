"""Fixed-size [env, time] storage of one round of rollouts: everything PPO needs to re-score the actions.

Each env contributes one episode (one sequence starting from the zero hidden state). Steps after an env's
terminal step are padding: ``valid`` is False there and their masks allow every action, so a forward pass over
the whole [env, time] block stays finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from esper.leyline import HEAD_ORDER, ActionHead, ActionResult, EncodedObservations, InvalidStateMachineError
from esper.leyline.protocols import HiddenState


class RolloutBuffer:
    """Preallocated tensors on the CPU, written one step (a batch of envs) at a time."""

    def __init__(
        self,
        n_envs: int,
        max_steps: int,
        feature_dim: int,
        num_slots: int,
        head_sizes: Mapping[ActionHead, int],
        initial_hidden: HiddenState,
    ) -> None:
        if n_envs < 1 or max_steps < 1:
            raise ValueError(f"need n_envs >= 1 and max_steps >= 1, got {n_envs} and {max_steps}")
        shape = (n_envs, max_steps)
        self.n_envs = n_envs
        self.max_steps = max_steps
        self.features = torch.zeros(*shape, feature_dim)
        self.blueprint_indices = torch.zeros(*shape, num_slots, dtype=torch.int64)
        self.masks = {h: torch.ones(*shape, head_sizes[h], dtype=torch.bool) for h in HEAD_ORDER}
        self.actions = {h: torch.zeros(shape, dtype=torch.int64) for h in HEAD_ORDER}
        self.log_probs = {h: torch.zeros(shape) for h in HEAD_ORDER}
        self.values = torch.zeros(shape)
        self.rewards = torch.zeros(shape)
        self.terminals = torch.zeros(shape, dtype=torch.bool)
        self.valid = torch.zeros(shape, dtype=torch.bool)
        self.initial_hidden = (initial_hidden[0].detach().cpu().clone(), initial_hidden[1].detach().cpu().clone())
        self._next_step = [0] * n_envs
        self._awaiting_outcome: set[int] = set()

    def record_action(self, env_ids: Sequence[int], encoded: EncodedObservations, result: ActionResult) -> None:
        """Store the inputs and outputs of one ``get_action`` call for ``env_ids`` (rows of the batch)."""
        rows = torch.as_tensor(list(env_ids), dtype=torch.int64)
        steps = torch.as_tensor([self._claim_step(env) for env in env_ids], dtype=torch.int64)
        self.features[rows, steps] = encoded.features.detach().float().cpu()
        self.blueprint_indices[rows, steps] = encoded.blueprint_indices.cpu()
        for head in HEAD_ORDER:
            self.masks[head][rows, steps] = result.masks[head].cpu()
            self.actions[head][rows, steps] = result.actions[head].cpu()
            self.log_probs[head][rows, steps] = result.log_probs[head].float().cpu()
        self.values[rows, steps] = result.values.float().cpu()
        self.valid[rows, steps] = True

    def record_outcome(self, env_ids: Sequence[int], rewards: Sequence[float], terminals: Sequence[bool]) -> None:
        """Store the reward and terminal flag of the action each env took last."""
        for env, reward, terminal in zip(env_ids, rewards, terminals, strict=True):
            if env not in self._awaiting_outcome:
                raise InvalidStateMachineError(f"env {env}: outcome recorded without a stored action")
            self._awaiting_outcome.discard(env)
            step = self._next_step[env] - 1
            self.rewards[env, step] = float(reward)
            self.terminals[env, step] = bool(terminal)

    def _claim_step(self, env: int) -> int:
        if env in self._awaiting_outcome:
            raise InvalidStateMachineError(f"env {env}: a second action was recorded before the first's outcome")
        step = self._next_step[env]
        if step >= self.max_steps:
            raise InvalidStateMachineError(f"env {env}: more than {self.max_steps} steps recorded in one round")
        self._next_step[env] = step + 1
        self._awaiting_outcome.add(env)
        return step

    @property
    def num_transitions(self) -> int:
        return int(self.valid.sum())

    def check_complete(self) -> None:
        """Every env's sequence must end in a terminal step with no missing outcome."""
        if self._awaiting_outcome:
            raise InvalidStateMachineError(f"envs {sorted(self._awaiting_outcome)} have an action without outcome")
        for env in range(self.n_envs):
            last = self._next_step[env] - 1
            if last < 0 or not bool(self.terminals[env, last]):
                raise InvalidStateMachineError(f"env {env}: its episode did not reach a terminal step")
