"""The two seams between packages: ``Controller`` (anything that chooses actions) and ``PolicyBundle``
(a trainable controller simic can run and update without knowing its network).

Torch appears here for type checking only; importing this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from esper.leyline.actions import HEAD_ORDER, ActionHead, FactoredAction
from esper.leyline.blueprints import Topology
from esper.leyline.errors import MaskShapeError
from esper.leyline.reports import EnvObservation
from esper.leyline.slots import SlotConfig

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: Recurrent state ``(h, c)``, each ``[num_layers, batch, hidden_dim]``.
HiddenState: TypeAlias = "tuple[Tensor, Tensor]"


@runtime_checkable
class Controller(Protocol):
    """Chooses lifecycle actions for a batch of environments, keeping per-environment state between steps.

    ``start_episodes(n)`` forgets all per-env state and prepares envs ``0..n-1``; ``act`` is then called once
    per host epoch with the ids of the envs still running (an env whose episode ended early is left out).
    """

    @property
    def name(self) -> str: ...

    def start_episodes(self, n_envs: int) -> None: ...

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]: ...


@runtime_checkable
class ExplainingController(Controller, Protocol):
    """A controller that can say why it chose what it chose: ``explain(env_id)`` describes its last ``act`` for
    that env as plain JSON values (a rule and the signals it saw, or a policy's probabilities). Explaining only
    reads what acting already decided: it changes nothing the controller does next."""

    def explain(self, env_id: int) -> Mapping[str, object]: ...


@dataclass(frozen=True, slots=True)
class ActionMasks:
    """Physically possible actions for a batch (True = allowed), in one bool tensor: ``side_by_side``
    ``[batch, columns]`` lays every mask of a row side by side, in this order:

    - the op mask, ``num_ops`` columns (op allowed in some slot);
    - the slots each op may target, ``num_ops * num_slots`` columns (op-major: op 0's slots first);
    - every other head in ``HEAD_ORDER`` (blueprint, style, tempo, alpha_target, alpha_speed, alpha_curve),
      ``head_sizes[head]`` columns each, as seen by an op that uses the head.

    One tensor because the policy reads it as one (a per-part tensor would be cut apart and glued back on every
    step); ``op``, ``slot_by_op`` and ``heads`` are views of it for everyone else. ``head_sizes`` are the action
    space's sizes (``head_sizes(slot_config, topology)``). Build one from parts with ``of``.
    """

    side_by_side: Tensor
    head_sizes: Mapping[ActionHead, int]

    def __post_init__(self) -> None:
        columns = _columns(self.head_sizes)
        if self.side_by_side.dim() != 2 or self.side_by_side.shape[1] != columns:
            raise MaskShapeError(
                f"action masks laid side by side have shape {list(self.side_by_side.shape)}, expected "
                f"[batch, {columns}] for head sizes {[self.head_sizes[head] for head in HEAD_ORDER]}"
            )

    @classmethod
    def of(cls, op: Tensor, slot_by_op: Tensor, heads: Mapping[ActionHead, Tensor]) -> ActionMasks:
        """The masks from their parts: ``op`` ``[batch, num_ops]``, ``slot_by_op`` ``[batch, num_ops, num_slots]``
        and ``heads[head]`` ``[batch, head_size]`` for every head but op and slot (all bool, on one device)."""
        batch, num_ops, num_slots = slot_by_op.shape
        missing = [head.value for head in _OTHER_HEADS if head not in heads]
        if missing:
            raise MaskShapeError(f"action masks lack the heads {missing}")
        sizes: dict[ActionHead, int] = {head: int(heads[head].shape[-1]) for head in _OTHER_HEADS}
        sizes[ActionHead.SLOT], sizes[ActionHead.OP] = num_slots, num_ops
        parts = (op, slot_by_op.reshape(batch, num_ops * num_slots), *(heads[head] for head in _OTHER_HEADS))
        side_by_side = op.new_zeros((batch, sum(part.shape[-1] for part in parts)))
        start = 0
        for part in parts:
            side_by_side[:, start : start + part.shape[-1]] = part
            start += part.shape[-1]
        return cls(side_by_side, {head: sizes[head] for head in HEAD_ORDER})

    @property
    def op(self) -> Tensor:
        """``[batch, num_ops]``: the op is allowed in some slot."""
        return self.side_by_side[:, mask_columns(self.head_sizes)[ActionHead.OP]]

    @property
    def slot_by_op(self) -> Tensor:
        """``[batch, num_ops, num_slots]``: the slots each op may target."""
        columns = self.side_by_side[:, mask_columns(self.head_sizes)[ActionHead.SLOT]]
        return columns.view(-1, self.head_sizes[ActionHead.OP], self.head_sizes[ActionHead.SLOT])

    @property
    def heads(self) -> dict[ActionHead, Tensor]:
        """``{head: [batch, head_size]}`` for every head but op and slot."""
        columns = mask_columns(self.head_sizes)
        return {head: self.side_by_side[:, columns[head]] for head in _OTHER_HEADS}


#: The heads after op and slot in ``ActionMasks.side_by_side``, in ``HEAD_ORDER``.
_OTHER_HEADS = tuple(head for head in HEAD_ORDER if head not in (ActionHead.OP, ActionHead.SLOT))


def mask_columns(sizes: Mapping[ActionHead, int]) -> dict[ActionHead, slice]:
    """Where each head's mask lies in ``ActionMasks.side_by_side`` for an action space of these head sizes (the
    slot head's columns hold the slots of every op, op-major)."""
    widths = {head: sizes[head] for head in (ActionHead.OP, ActionHead.SLOT, *_OTHER_HEADS)}
    widths[ActionHead.SLOT] *= sizes[ActionHead.OP]
    columns, start = {}, 0
    for head, width in widths.items():
        columns[head] = slice(start, start + width)
        start += width
    return columns


def _columns(sizes: Mapping[ActionHead, int]) -> int:
    """Width of ``ActionMasks.side_by_side`` for an action space of these head sizes."""
    ops = sizes[ActionHead.OP]
    return ops * (1 + sizes[ActionHead.SLOT]) + sum(sizes[head] for head in _OTHER_HEADS)


#: A policy's own encoding of observations: named tensors that only the policy reads. Every tensor has the same
#: leading dimensions: ``[batch, ...]`` at one step (``encode``), ``[batch, time, ...]`` when the stored steps of
#: whole sequences come back (``evaluate_actions``) and ``[n, ...]`` for ``n`` stored steps in a row
#: (``update_normalizer``). Simic stores, slices and stacks these tensors along the leading dimensions and never
#: looks at their names, so a policy with another encoder plugs in without a change to leyline or simic.
PolicyInputs: TypeAlias = "Mapping[str, Tensor]"


@dataclass(frozen=True, slots=True)
class EncodedObservations:
    """A batch of observations as the policy's inputs, before normalization (the bundle normalizes inside its
    forward), with the action masks of the same batch.

    - ``inputs``: the policy's named tensors, each ``[batch, ...]`` (opaque to everyone but the policy);
    - ``masks``: the action masks (leyline's action space, so every caller can read them).
    """

    inputs: PolicyInputs
    masks: ActionMasks


@dataclass(frozen=True, slots=True)
class ActionExplanation:
    """How sure a policy was of one step, beyond the log-probs of its choices (asked for with ``explain``).

    - ``op_probabilities``: ``[batch, num_ops]`` float32, the op head's probabilities (0 for a forbidden op);
    - ``entropy``: ``[batch, H]`` float32, column ``HEAD_INDEX[head]``: the normalized entropy (entropy /
      ln(number allowed), 0 when one action is allowed) of the distribution each head's action was drawn from.
    """

    op_probabilities: Tensor
    entropy: Tensor


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What ``get_action`` returns; everything simic stores for the PPO update. Not differentiable.

    Per-head values are stacked, one column per head (``HEAD_INDEX``; ``H = len(HEAD_ORDER)``), so a step is
    stored with one write per field:

    - ``actions``: ``[batch, H]`` int64 action indices (a head's placeholder when it is irrelevant);
    - ``log_probs``: ``[batch, H]`` float32 (exactly 0 for irrelevant heads);
    - ``masks``: ``[batch, H, width]`` bool (``width = mask_width(head_sizes)``), the mask each head was actually
      sampled from (op-conditioned slot mask, placeholder-only rows for irrelevant heads) in its first
      ``head_size`` columns, padding False after them, so the update scores the same distribution;
    - ``relevant``: ``[batch, H]`` bool, whether the head matters for the chosen op (``CAUSAL_RELEVANCE``); the
      policy builds this tensor anyway to canonicalize its masks, and PPO masks every per-head term with it;
    - ``values``: ``[batch]`` float32 state value V(s), in the policy's (normalized) return units;
    - ``hidden``: the recurrent state after this step;
    - ``explanation``: op probabilities and per-head entropies when ``get_action`` was asked to ``explain``,
      else None.
    """

    actions: Tensor
    log_probs: Tensor
    masks: Tensor
    relevant: Tensor
    values: Tensor
    hidden: HiddenState
    explanation: ActionExplanation | None = None


@dataclass(frozen=True, slots=True)
class EvalResult:
    """What ``evaluate_actions`` returns, with gradients (per-head values stacked as in ``ActionResult``).

    - ``log_probs``: ``[batch, time, H]`` float32;
    - ``entropy``: ``[batch, time, H]`` float32, normalized by ln(number of valid actions), 0 when one is valid;
    - ``values``: ``[batch, time]`` float32.
    """

    log_probs: Tensor
    entropy: Tensor
    values: Tensor


@runtime_checkable
class PolicyBundle(Protocol):
    """A trainable controller, as simic and the app see it: encode, act, re-score, learn, save and restore.

    The seam is deliberately narrow: what a policy's network looks like (sizes, compilation, dtype, the layout of
    its inputs) is the policy package's business. Everything needed to run the policy standalone after training
    is in ``state_dict()`` and ``build_config()``. Recurrent state is explicit: callers keep it per env; a policy
    without recurrence returns zero-width hidden tensors and still accepts them.

    Device and buffers: ``device`` is where parameters *and* normalizer buffers live; inputs are moved there by
    the bundle.
    """

    @property
    def kind(self) -> str:
        """The registry name this bundle was created under."""
        ...

    @property
    def slot_config(self) -> SlotConfig: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def device(self) -> torch.device: ...

    def encode(self, observations: Sequence[EnvObservation]) -> EncodedObservations:
        """Inputs and masks of a batch; raises ``InvalidStateMachineError`` on an all-false mask row."""
        ...

    def initial_hidden(self, batch_size: int) -> HiddenState:
        """Zero recurrent state for ``batch_size`` new episodes (no gradient history)."""
        ...

    def get_action(
        self,
        observations: EncodedObservations,
        hidden: HiddenState,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        explain: bool = False,
    ) -> ActionResult:
        """Sample (or take the argmax of) every head, op first, in inference mode.

        Random draws come from ``generator`` when given (reproducible rollouts), else torch's global RNG.
        ``explain`` adds the ``explanation`` (it draws nothing, so the actions are the same either way).
        """
        ...

    def evaluate_actions(self, inputs: PolicyInputs, actions: Tensor, masks: Tensor, hidden: HiddenState) -> EvalResult:
        """Re-score stored actions over whole sequences, with gradients.

        ``inputs`` are the stored ``EncodedObservations.inputs`` stacked to ``[batch, time, ...]``; ``actions``
        ``[batch, time, H]`` and ``masks`` ``[batch, time, H, width]``, the ``ActionResult`` fields stored from
        ``get_action``; ``hidden`` is the state at the first step of each sequence.
        """
        ...

    def update_normalizer(self, inputs: PolicyInputs) -> None:
        """Fold ``n`` stored steps (``inputs`` as ``[n, ...]``) into the running input statistics. Call after an
        update, never during a rollout, so a rollout and its update see the same normalization."""
        ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore weights and normalizer; raises ``CheckpointError`` naming what does not match."""
        ...

    def build_config(self) -> dict[str, Any]:
        """JSON-serializable arguments that rebuild an identical (untrained) bundle through the factory."""
        ...
