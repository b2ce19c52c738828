"""``LSTMPolicyBundle``: leyline's ``PolicyBundle`` around the factored recurrent actor-critic.

It owns everything a trained policy needs to run standalone: the slot config and topology (action space), the
feature schema version, the network sizes and the network with its observation normalizer. Simic sees it only
through the protocol. Device placement comes first, compilation after; a compiled bundle cannot move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final, Self

import torch

from esper.leyline import (
    ActionResult,
    CheckpointError,
    ConfigError,
    EncodedObservations,
    EnvObservation,
    EvalResult,
    HiddenState,
    PolicyInputs,
    SlotConfig,
    Topology,
    head_sizes,
    identical,
)
from esper.tamiyo.encoding.feature_layout import FEATURE_SCHEMA_VERSION, feature_dim
from esper.tamiyo.encoding.features import encode_columns
from esper.tamiyo.encoding.masks import masks_of_columns
from esper.tamiyo.encoding.observation_columns import read_columns
from esper.tamiyo.policy.factored_heads import sample_actions, score_actions
from esper.tamiyo.policy.input_checks import (
    check_blueprint_indices,
    check_features,
    check_hidden,
    check_input_names,
    check_step_masks,
    check_stored_actions,
)
from esper.tamiyo.policy.network import FactoredRecurrentActorCritic, NetworkOutput, NetworkSizes

#: ``torch.compile`` modes a bundle accepts.
COMPILE_MODES: Final = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Identifies the checkpoint layout written by ``state_dict``.
STATE_FORMAT: Final = "esper.tamiyo.lstm_policy/1"
#: The names of this policy's inputs (``EncodedObservations.inputs``): raw features ``[..., feature_dim]``
#: float32 and the blueprint of each slot ``[..., num_slots]`` int64 (``Blueprint`` values, 0 = no seed).
FEATURES: Final = "features"
BLUEPRINT_INDICES: Final = "blueprint_indices"
_INPUT_NAMES: Final = (FEATURES, BLUEPRINT_INDICES)
_STATE_KEYS: Final = ("format", "kind", "feature_schema_version", "slot_config", "topology", "sizes", "network")


class LSTMPolicyBundle:
    """A recurrent factored policy. All-false mask rows and non-finite logits always raise when acting (one host
    read per step). ``validate_masks`` (per instance, off by default) also checks at update time that every
    stored action is allowed by its stored mask, which costs another device sync."""

    #: Whether the network carries memory between steps (an LSTM); ``MLPPolicyBundle`` is the same policy without.
    RECURRENT: ClassVar[bool] = True

    def __init__(
        self,
        slot_config: SlotConfig,
        *,
        kind: str = "lstm",
        topology: Topology = Topology.CNN,
        sizes: NetworkSizes | None = None,
        validate_masks: bool = False,
    ) -> None:
        self._kind = kind
        self._slot_config = slot_config
        self._topology = topology
        self._sizes = sizes if sizes is not None else NetworkSizes()
        self._head_sizes = MappingProxyType(head_sizes(slot_config, topology))
        self._feature_dim = feature_dim(slot_config.num_slots)
        self._network = FactoredRecurrentActorCritic(
            feature_dim=self._feature_dim,
            num_slots=slot_config.num_slots,
            head_sizes=self._head_sizes,
            sizes=self._sizes,
            recurrent=self.RECURRENT,
        )
        #: A parameter every network has, to read ``device`` and ``dtype`` from on every act call without walking
        #: modules (moving a module keeps its parameter objects and swaps their data).
        self._probe = self._network.heads.output_bias
        self._compiled: Callable[..., NetworkOutput] | None = None
        self._compile_mode: str | None = None
        self.validate_masks = validate_masks

    @classmethod
    def build(cls, *, kind: str, slot_config: SlotConfig, topology: Topology, sizes: Mapping[str, int]) -> Self:
        """The registry's constructor: keyword sizes as in ``NetworkSizes`` (unknown names raise)."""
        return cls(slot_config, kind=kind, topology=topology, sizes=NetworkSizes.from_mapping(sizes))

    # --- identity -------------------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def slot_config(self) -> SlotConfig:
        return self._slot_config

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def feature_dim(self) -> int:
        return self._feature_dim

    @property
    def hidden_dim(self) -> int:
        return self._sizes.hidden_dim

    @property
    def sizes(self) -> NetworkSizes:
        return self._sizes

    @property
    def feature_schema_version(self) -> int:
        return FEATURE_SCHEMA_VERSION

    @property
    def network(self) -> FactoredRecurrentActorCritic:
        """The underlying module, never the compiled wrapper (optimizers and gradient clipping use this)."""
        return self._network

    # --- placement and compilation --------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the parameters and normalizer buffers live (read from the heads' output bias)."""
        return self._probe.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the floating parameters (read from the heads' output bias, like ``device``)."""
        return self._probe.dtype

    @property
    def is_compiled(self) -> bool:
        """True once ``compile`` succeeded (tracked here, not guessed from wrapper attributes)."""
        return self._compiled is not None

    def to(self, device: torch.device | str) -> Self:
        """Move parameters and buffers; only before ``compile`` (a compiled graph is specialized to its device)."""
        if self.is_compiled:
            raise ConfigError("cannot move a compiled policy bundle: place it on its device before compile()")
        self._network.to(torch.device(device))
        self._probe = self._network.heads.output_bias  # the same object unless torch was told to replace them
        return self

    def compile(self, mode: str) -> None:
        """Wrap the network's forward in ``torch.compile(fullgraph=True)``.

        Failures propagate: an unknown mode raises ``ConfigError`` and an error from ``torch.compile`` propagates
        with the bundle left uncompiled. Tracing is lazy, so a tracing error surfaces from the first
        ``get_action``/``evaluate_actions`` call; with ``fullgraph=True`` a graph break is such an error, never a
        silent fallback to eager. Compiling again with the same mode does nothing; another mode raises.
        """
        if mode not in COMPILE_MODES:
            raise ConfigError(f"unknown compile mode {mode!r}; expected one of {list(COMPILE_MODES)}")
        if self._compiled is not None:
            if mode != self._compile_mode:
                raise ConfigError(f"bundle already compiled with mode {self._compile_mode!r}, asked for {mode!r}")
            return
        self._compiled = torch.compile(self._network, mode=mode, fullgraph=True)
        self._compile_mode = mode

    def _forward(self, features: torch.Tensor, blueprint_indices: torch.Tensor, hidden: HiddenState) -> NetworkOutput:
        network = self._compiled if self._compiled is not None else self._network
        return network(features, blueprint_indices, hidden)

    # --- acting ---------------------------------------------------------------------------------------------

    def encode(self, observations: Sequence[EnvObservation]) -> EncodedObservations:
        """Inputs ``features`` ``[batch, feature_dim]`` and ``blueprint_indices`` ``[batch, num_slots]`` with the
        masks, on ``device``; raises ``InvalidStateMachineError`` on an all-false mask row."""
        columns = read_columns(observations, self._slot_config)
        batch = encode_columns(columns)
        device = self._probe.device
        masks = masks_of_columns(columns, self._topology).to_tensors(device)
        inputs = {FEATURES: batch.features.to(device), BLUEPRINT_INDICES: batch.blueprint_indices.to(device)}
        return EncodedObservations(inputs=MappingProxyType(inputs), masks=masks)

    def initial_hidden(self, batch_size: int) -> HiddenState:
        """Zeros ``[num_layers, batch_size, hidden_dim]`` on ``device`` in ``dtype``: ordinary tensors with no
        gradient history, so callers may write per-env rows into them in place."""
        return self._network.initial_hidden(batch_size, device=self.device, dtype=self.dtype)

    def get_action(
        self,
        observations: EncodedObservations,
        hidden: HiddenState,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        explain: bool = False,
    ) -> ActionResult:
        """One step for a batch of envs, in ``torch.inference_mode``: the returned log-probs and values are not
        differentiable (they are the stored old log-probs of PPO); training values and log-probs come from
        ``evaluate_actions``. ``deterministic`` takes each head's most probable allowed action; ``explain`` adds
        the op probabilities and per-head entropies (the same actions either way)."""
        inputs = observations.inputs
        check_input_names(inputs, _INPUT_NAMES)
        (batch,) = check_features(inputs[FEATURES], 2, self._feature_dim)
        check_blueprint_indices(inputs[BLUEPRINT_INDICES], (batch,), self._slot_config.num_slots)
        check_step_masks(observations.masks, batch, self._head_sizes)
        check_hidden(hidden, self._network.state_shape(batch))
        device = self._probe.device
        with torch.inference_mode():
            # The one place a single step becomes a length-1 sequence ([batch, 1, ...]) and back.
            output = self._forward(
                inputs[FEATURES].to(device=device, dtype=self._probe.dtype).unsqueeze(1),
                inputs[BLUEPRINT_INDICES].to(device).unsqueeze(1),
                (hidden[0].to(device), hidden[1].to(device)),
            )
            sampled = sample_actions(
                output.logits[:, 0],
                observations.masks,
                self._network.layout,
                deterministic=deterministic,
                generator=generator,
                explain=explain,
            )
            values = output.values[:, 0].float()
        return ActionResult(
            actions=sampled.actions,
            log_probs=sampled.log_probs,
            masks=sampled.masks,
            relevant=sampled.relevant,
            values=values,
            hidden=output.hidden,
            explanation=sampled.explanation,
        )

    def evaluate_actions(
        self, inputs: PolicyInputs, actions: torch.Tensor, masks: torch.Tensor, hidden: HiddenState
    ) -> EvalResult:
        """Re-score stored sequences with gradients: ``inputs`` ``features`` ``[batch, time, feature_dim]`` and
        ``blueprint_indices`` ``[batch, time, num_slots]``, ``actions`` ``[batch, time, H]`` and ``masks``
        ``[batch, time, H, width]`` (as returned by ``get_action``), ``hidden`` the state before the first step
        (inference-mode actions and state are copied first, since autograd cannot save them)."""
        check_input_names(inputs, _INPUT_NAMES)
        features, blueprint_indices = inputs[FEATURES], inputs[BLUEPRINT_INDICES]
        leading = check_features(features, 3, self._feature_dim)
        check_blueprint_indices(blueprint_indices, leading, self._slot_config.num_slots)
        check_stored_actions(actions, masks, leading, self._network.layout.width)
        check_hidden(hidden, self._network.state_shape(leading[0]))
        device = self.device
        initial = tuple(t.clone() if t.is_inference() else t for t in hidden)
        output = self._forward(
            features.to(device=device, dtype=self.dtype),
            blueprint_indices.to(device),
            (initial[0].to(device), initial[1].to(device)),
        )
        stored = actions.clone() if actions.is_inference() else actions  # gather saves it for backward
        scored = score_actions(output.logits, stored.to(device), masks.to(device), validate=self.validate_masks)
        return EvalResult(log_probs=scored.log_probs, entropy=scored.entropy, values=output.values.float())

    # --- learning state -------------------------------------------------------------------------------------

    def update_normalizer(self, inputs: PolicyInputs) -> None:
        """Fold ``n`` stored steps' raw ``features`` ``[n, feature_dim]`` into the running statistics (rows with
        NaN/inf are skipped; the blueprint indices need none). The statistics change only here."""
        check_input_names(inputs, _INPUT_NAMES)
        check_features(inputs[FEATURES], 2, self._feature_dim)
        self._network.normalizer.update(inputs[FEATURES])

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self._network.parameters()

    def build_config(self) -> dict[str, Any]:
        """Arguments of ``create_policy`` that rebuild this bundle untrained (JSON-serializable)."""
        return {
            "kind": self._kind,
            "slot_config": list(self._slot_config.names()),
            "topology": self._topology.value,
            "sizes": self._sizes.as_dict(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Configuration (to check on load) plus the network's weights and normalizer buffers. The network part
        never carries a compiled wrapper's key prefix: it is taken from the underlying module."""
        config = self.build_config()
        return {
            "format": STATE_FORMAT,
            "kind": config["kind"],
            "feature_schema_version": FEATURE_SCHEMA_VERSION,
            "slot_config": config["slot_config"],
            "topology": config["topology"],
            "sizes": config["sizes"],
            "network": self._network.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore weights and normalizer after checking everything first: nothing is changed unless the whole
        checkpoint fits. Raises ``CheckpointError`` naming what does not match."""
        if not isinstance(state, Mapping):
            raise CheckpointError(f"policy checkpoint must be a mapping, got {type(state).__name__}")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise CheckpointError(f"policy checkpoint lacks {missing}")
        expected = self.state_dict()
        differences = [
            f"{key}: checkpoint has {state[key]!r}, this bundle has {expected[key]!r}"
            for key in _STATE_KEYS
            if key != "network" and not identical(state[key], expected[key])
        ]
        if differences:
            raise CheckpointError("policy checkpoint does not match this bundle: " + "; ".join(differences))
        weights = state["network"]
        if not isinstance(weights, Mapping):
            raise CheckpointError(f"checkpoint 'network' must be a mapping of tensors, got {type(weights).__name__}")
        _check_tensors(weights, expected["network"])
        self._network.load_state_dict(dict(weights), strict=True)


def _check_tensors(weights: Mapping[str, object], expected: Mapping[str, torch.Tensor]) -> None:
    """Same names, shapes and dtypes as the live network, and only finite values."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"network weights differ: missing {missing}, unexpected {unexpected}")
    for name, reference in expected.items():
        value = weights[name]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"network weight {name} is a {type(value).__name__}, not a tensor")
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise CheckpointError(
                f"network weight {name} is {value.dtype} {list(value.shape)}, "
                f"expected {reference.dtype} {list(reference.shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"network weight {name} contains NaN or infinite values (corrupt checkpoint)")
        if name.startswith("normalizer.") and name != "normalizer.mean" and bool((value < 0).any()):
            raise CheckpointError(f"observation normalizer {name.removeprefix('normalizer.')} is negative")


class MLPPolicyBundle(LSTMPolicyBundle):
    """The memory ablation (policy kind ``"mlp"``): the same encoder, trunk, heads, masks and checkpoint layout,
    with a feed-forward layer of ``hidden_dim`` units where the LSTM was (``FeedForwardCore``), so a comparison
    with ``"lstm"`` answers one question: does the controller need memory?"""

    RECURRENT = False

    def __init__(
        self,
        slot_config: SlotConfig,
        *,
        kind: str = "mlp",
        topology: Topology = Topology.CNN,
        sizes: NetworkSizes | None = None,
        validate_masks: bool = False,
    ) -> None:
        if sizes is not None and sizes.num_layers != 1:
            raise ConfigError(
                "an mlp policy has one feed-forward layer in place of the LSTM: num_layers must be 1, "
                f"got {sizes.num_layers}"
            )
        super().__init__(slot_config, kind=kind, topology=topology, sizes=sizes, validate_masks=validate_masks)
