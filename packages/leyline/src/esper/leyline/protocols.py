"""The two seams between packages: ``Controller`` (anything that chooses actions) and ``PolicyBundle``
(a trainable controller simic can run and update without knowing its network).

Torch appears here for type checking only; importing this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from esper.leyline.actions import ActionHead, FactoredAction
from esper.leyline.blueprints import Topology
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
    """Physically possible actions for a batch (True = allowed).

    - ``op``: ``[batch, num_ops]`` bool, op allowed in some slot;
    - ``slot_by_op``: ``[batch, num_ops, num_slots]`` bool, the slots each op may target;
    - ``heads``: ``[batch, head_size]`` bool for every other head (blueprint, style, tempo, alpha_target,
      alpha_speed, alpha_curve), as seen by an op that uses the head.
    """

    op: Tensor
    slot_by_op: Tensor
    heads: Mapping[ActionHead, Tensor]


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
    - ``entropy[head]``: ``[batch]`` float32 normalized entropy (entropy / ln(number allowed), 0 when one action
      is allowed) of the distribution each head's action was drawn from.
    """

    op_probabilities: Tensor
    entropy: Mapping[ActionHead, Tensor]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What ``get_action`` returns; everything simic stores for the PPO update. Not differentiable.

    - ``actions[head]``: ``[batch]`` int64 action index (placeholder when the head is irrelevant);
    - ``log_probs[head]``: ``[batch]`` float32 (exactly 0 for irrelevant heads);
    - ``masks[head]``: ``[batch, head_size]`` bool, the mask actually sampled from (op-conditioned slot mask,
      placeholder-only rows for irrelevant heads), so the update scores the same distribution;
    - ``relevant[head]``: ``[batch]`` bool, whether the head matters for the chosen op (``CAUSAL_RELEVANCE``);
      the policy builds this tensor anyway to canonicalize its masks, and PPO masks every per-head term with it;
    - ``values``: ``[batch]`` float32 state value V(s), in the policy's (normalized) return units;
    - ``hidden``: the recurrent state after this step;
    - ``explanation``: op probabilities and per-head entropies when ``get_action`` was asked to ``explain``,
      else None.
    """

    actions: Mapping[ActionHead, Tensor]
    log_probs: Mapping[ActionHead, Tensor]
    masks: Mapping[ActionHead, Tensor]
    relevant: Mapping[ActionHead, Tensor]
    values: Tensor
    hidden: HiddenState
    explanation: ActionExplanation | None = None


@dataclass(frozen=True, slots=True)
class EvalResult:
    """What ``evaluate_actions`` returns, with gradients.

    - ``log_probs[head]``: ``[batch, time]`` float32;
    - ``entropy[head]``: ``[batch, time]`` float32, normalized by ln(number of valid actions), 0 when one is valid;
    - ``values``: ``[batch, time]`` float32.
    """

    log_probs: Mapping[ActionHead, Tensor]
    entropy: Mapping[ActionHead, Tensor]
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

    def evaluate_actions(
        self,
        inputs: PolicyInputs,
        actions: Mapping[ActionHead, Tensor],
        masks: Mapping[ActionHead, Tensor],
        hidden: HiddenState,
    ) -> EvalResult:
        """Re-score stored actions over whole sequences, with gradients.

        ``inputs`` are the stored ``EncodedObservations.inputs`` stacked to ``[batch, time, ...]``;
        ``actions[head]`` ``[batch, time]``; ``masks[head]`` ``[batch, time, head_size]`` (the masks stored
        from ``get_action``); ``hidden`` is the state at the first step of each sequence.
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
