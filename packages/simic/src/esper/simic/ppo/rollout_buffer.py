"""Fixed-size [env, time] storage of one round of rollouts: everything PPO needs to re-score the actions.

Each env contributes one episode (one sequence starting from the zero hidden state). The training loop writes a
whole transition at once (``add``: the policy's inputs, its result and the env's reward), as SB3's rollout buffer
does. The policy's inputs are stored without being read: whatever named tensors the policy's ``encode`` made,
stacked to ``[env, time, ...]`` and handed back to its ``evaluate_actions``. Steps after an env's terminal step are
padding: ``valid`` is False there, their inputs are zeros and their masks allow every action, so a forward pass
over the whole [env, time] block stays finite. Per-head fields are stored stacked as the policy returns them
(``[env, time, H]``, column ``HEAD_INDEX[head]``), so a step is one write per field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from esper.leyline import (
    HEAD_ORDER,
    ActionHead,
    ActionResult,
    FeatureWidthError,
    InvalidStateMachineError,
    PolicyInputs,
    mask_width,
)
from esper.leyline.protocols import HiddenState


class RolloutBuffer:
    """Preallocated tensors on the CPU, written one step (a batch of envs) at a time. The storage of the policy's
    inputs is allocated at the first ``add``, from the names, shapes and dtypes the policy produced."""

    def __init__(
        self, n_envs: int, max_steps: int, head_sizes: Mapping[ActionHead, int], initial_hidden: HiddenState
    ) -> None:
        if n_envs < 1 or max_steps < 1:
            raise ValueError(f"need n_envs >= 1 and max_steps >= 1, got {n_envs} and {max_steps}")
        shape = (n_envs, max_steps)
        self.n_envs = n_envs
        self.max_steps = max_steps
        #: The policy's inputs, each ``[env, time, ...]`` (empty until the first ``add``).
        self.inputs: dict[str, torch.Tensor] = {}
        heads = len(HEAD_ORDER)
        #: ``[env, time, H, width]``: each head's mask in its first ``head_sizes[head]`` columns, padding False
        #: after them (on padding steps every action of every head is allowed).
        self.masks = torch.zeros(*shape, heads, mask_width(head_sizes), dtype=torch.bool)
        for column, head in enumerate(HEAD_ORDER):
            self.masks[:, :, column, : head_sizes[head]] = True
        self.actions = torch.zeros(*shape, heads, dtype=torch.int64)
        self.log_probs = torch.zeros(*shape, heads)
        #: Whether each head mattered for the stored op (the policy's ``ActionResult.relevant``; False on padding).
        self.relevant = torch.zeros(*shape, heads, dtype=torch.bool)
        self.head_sizes = {head: head_sizes[head] for head in HEAD_ORDER}
        self.values = torch.zeros(shape)
        self.rewards = torch.zeros(shape)
        self.terminals = torch.zeros(shape, dtype=torch.bool)
        self.valid = torch.zeros(shape, dtype=torch.bool)
        self.initial_hidden = (initial_hidden[0].detach().cpu().clone(), initial_hidden[1].detach().cpu().clone())
        self._next_step = [0] * n_envs
        self._ended = [False] * n_envs

    def add(
        self,
        env_ids: Sequence[int],
        inputs: PolicyInputs,
        result: ActionResult,
        rewards: Sequence[float],
        terminals: Sequence[bool],
    ) -> None:
        """Store one transition for each of ``env_ids`` (the rows of the batch, in order): what the policy saw
        (``inputs``), what ``get_action`` returned for it (``result``) and what the env answered."""
        rows = torch.as_tensor(list(env_ids), dtype=torch.int64)
        steps = torch.as_tensor([self._claim_step(env) for env in env_ids], dtype=torch.int64)
        if not self.inputs:
            self.inputs = {
                name: torch.zeros(self.n_envs, self.max_steps, *value.shape[1:], dtype=value.dtype)
                for name, value in inputs.items()
            }
        self._check_inputs(inputs)
        for name, value in inputs.items():
            self.inputs[name][rows, steps] = value.detach().cpu()
        self.masks[rows, steps] = result.masks.cpu()
        self.actions[rows, steps] = result.actions.cpu()
        self.log_probs[rows, steps] = result.log_probs.float().cpu()
        self.relevant[rows, steps] = result.relevant.cpu()
        self.values[rows, steps] = result.values.float().cpu()
        self.rewards[rows, steps] = torch.tensor([float(r) for r in rewards])
        self.terminals[rows, steps] = torch.tensor([bool(t) for t in terminals])
        self.valid[rows, steps] = True
        for env, terminal in zip(env_ids, terminals, strict=True):
            self._ended[env] = bool(terminal)

    def _claim_step(self, env: int) -> int:
        if self._ended[env]:
            raise InvalidStateMachineError(f"env {env}: a step was stored after its episode's terminal step")
        step = self._next_step[env]
        if step >= self.max_steps:
            raise InvalidStateMachineError(f"env {env}: more than {self.max_steps} steps recorded in one round")
        self._next_step[env] = step + 1
        return step

    def _check_inputs(self, inputs: PolicyInputs) -> None:
        """Every step must carry the names and per-row shapes of the first (the storage was made for them)."""
        if set(inputs) != set(self.inputs):
            raise FeatureWidthError(
                f"policy inputs {sorted(inputs)} differ from the first step's {sorted(self.inputs)}"
            )
        for name, value in inputs.items():
            if value.shape[1:] != self.inputs[name].shape[2:]:
                raise FeatureWidthError(
                    f"policy input {name!r} has rows of shape {list(value.shape[1:])}, the first step's had "
                    f"{list(self.inputs[name].shape[2:])}"
                )

    @classmethod
    def concatenate(cls, buffers: Sequence[RolloutBuffer]) -> RolloutBuffer:
        """One buffer holding the rows of ``buffers`` in order (complete episodes of the same length limit)."""
        if not buffers:
            raise ValueError("concatenate needs at least one buffer")
        first = buffers[0]
        for buffer in buffers:
            buffer.check_complete()
            if (
                buffer.max_steps != first.max_steps
                or set(buffer.inputs) != set(first.inputs)
                or buffer.head_sizes != first.head_sizes
            ):
                raise FeatureWidthError(
                    "buffers to concatenate differ in length, in the policy's inputs or in the head sizes"
                )
        initial = tuple(torch.cat([b.initial_hidden[i] for b in buffers], dim=1) for i in range(2))
        joined = cls(sum(b.n_envs for b in buffers), first.max_steps, first.head_sizes, (initial[0], initial[1]))
        joined.inputs = {name: torch.cat([b.inputs[name] for b in buffers]) for name in first.inputs}
        for name in ("masks", "actions", "log_probs", "relevant", "values", "rewards", "terminals", "valid"):
            setattr(joined, name, torch.cat([getattr(b, name) for b in buffers]))
        joined._next_step = [step for b in buffers for step in b._next_step]
        joined._ended = [True] * joined.n_envs
        return joined

    def valid_inputs(self) -> dict[str, torch.Tensor]:
        """The inputs of every stored step, each ``[n, ...]`` (what ``update_normalizer`` folds in)."""
        return {name: value[self.valid] for name, value in self.inputs.items()}

    def check_complete(self) -> None:
        """Every env's sequence must end in a terminal step."""
        for env in range(self.n_envs):
            if not self._ended[env]:
                raise InvalidStateMachineError(f"env {env}: its episode did not reach a terminal step")
