"""The rule-based controller (docs/design/controllers.md#the-heuristic): the baseline every learned policy must beat.

Per env it keeps a signal tracker, blueprint prune penalties, a rotation index and the epoch of the last prune;
``env_state(env)`` returns all of it, so comparisons with a learned policy can account for what it knew.

One action per env per step, chosen by this priority (slots in slot-config order within each step):
1. safety prunes: a seed whose accuracy fell more than ``failure_drop`` pp below its stage-entry accuracy after
   ``failure_min_epochs_in_stage`` epochs in the stage, or "ransomware" (contribution above
   ``ransomware_contribution`` while accuracy is below what it was at germination, seed at least
   ``ransomware_min_age`` epochs old), or a stalled seed (its BLENDING gate has refused it for
   ``stalled_prune_epochs`` epochs after its minimum TRAINING dwell: it can never advance and, since seeds
   develop one at a time, it would block all further growth);
2. HOLDING seeds with a measured contribution: fossilize above ``min_fossilize_contribution`` pp, else prune;
3. BLENDING seeds: advance once alpha has reached a full target (1.0, not ramping); a seed resting at a partial
   target is retargeted to 1.0 first;
4. GERMINATED/TRAINING seeds: advance (the gate may refuse; the request is repeated each epoch);
5. germinate into the first empty slot (see ``_germination``), else wait.
Every action is checked against the action masks; a candidate the masks forbid is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from esper.leyline import (
    ALPHA_TOLERANCE,
    MIN_FOSSILIZE_CONTRIBUTION,
    TOPOLOGY_BLUEPRINTS,
    AlphaTarget,
    BlendStyle,
    Blueprint,
    ConfigError,
    EnvObservation,
    EpisodeEnvs,
    FactoredAction,
    InvalidStateMachineError,
    LifecycleOp,
    SeedReport,
    SeedStage,
    SlotConfig,
    SlotReport,
    Tempo,
    Topology,
)
from esper.tamiyo.encoding.masks import MaskArrays, build_mask_arrays
from esper.tamiyo.rules.decisions import Decision, DecisionReason
from esper.tamiyo.rules.tracker import SignalTracker, TrackerConfig, TrackerSignals

#: Blueprint rotation per topology: germination takes the next one whose prune penalty allows it. The transformer
#: rotation follows the CNN one in spirit with the closest counterparts: light, then heavy, then cheap.
DEFAULT_ROTATIONS: Mapping[Topology, tuple[Blueprint, ...]] = MappingProxyType(
    {
        Topology.CNN: (
            Blueprint.CONV_LIGHT,
            Blueprint.CONV_HEAVY,
            Blueprint.ATTENTION,
            Blueprint.NORM,
            Blueprint.DEPTHWISE,
        ),
        Topology.TRANSFORMER: (Blueprint.LORA, Blueprint.MLP, Blueprint.ATTENTION, Blueprint.NORM, Blueprint.MLP_SMALL),
    }
)


@dataclass(frozen=True, slots=True)
class HeuristicConfig:
    """Thresholds of the rules (accuracies and contributions in percentage points, times in epochs)."""

    min_germinate_epoch: int = 5
    plateau_epochs_to_germinate: int = 3
    plateau_threshold: float = 0.5
    stable_band: tuple[float, float] = (-0.05, 0.03)
    stabilization_epochs: int = 3
    prune_embargo_epochs: int = 5
    #: ``None``: ``DEFAULT_ROTATIONS`` of the controller's topology.
    blueprint_rotation: tuple[Blueprint, ...] | None = None
    prune_penalty: float = 2.0
    penalty_decay: float = 0.5
    penalty_drop_below: float = 0.1
    penalty_threshold: float = 3.0
    min_fossilize_contribution: float = MIN_FOSSILIZE_CONTRIBUTION
    failure_drop: float = 2.0
    failure_min_epochs_in_stage: int = 5
    ransomware_contribution: float = 0.1
    ransomware_min_age: int = 10
    stalled_prune_epochs: int = 3
    germination_style: BlendStyle = BlendStyle.SIGMOID_ADD
    germination_tempo: Tempo = Tempo.STANDARD

    def __post_init__(self) -> None:
        if not self.min_fossilize_contribution > 0.0:
            raise ConfigError(
                f"min_fossilize_contribution must be > 0 (fossilizing a seed that adds nothing is reward "
                f"hacking), got {self.min_fossilize_contribution}"
            )
        if not 0.0 < self.penalty_decay < 1.0:
            raise ConfigError(f"penalty_decay must be in (0, 1), got {self.penalty_decay}")
        counts = {
            "min_germinate_epoch": self.min_germinate_epoch,
            "plateau_epochs_to_germinate": self.plateau_epochs_to_germinate,
            "prune_embargo_epochs": self.prune_embargo_epochs,
            "failure_min_epochs_in_stage": self.failure_min_epochs_in_stage,
            "ransomware_min_age": self.ransomware_min_age,
            "stalled_prune_epochs": self.stalled_prune_epochs,
        }
        negative = {name: value for name, value in counts.items() if value < 0}
        if negative:
            raise ConfigError(f"heuristic epoch counts must be >= 0, got {negative}")
        if self.stalled_prune_epochs < 1:
            raise ConfigError(f"stalled_prune_epochs must be >= 1, got {self.stalled_prune_epochs}")
        if self.blueprint_rotation is not None and (
            not self.blueprint_rotation or Blueprint.NOOP in self.blueprint_rotation
        ):
            raise ConfigError("blueprint_rotation needs at least one real blueprint and no NOOP")

    def tracker_config(self) -> TrackerConfig:
        return TrackerConfig(self.plateau_threshold, self.stable_band, self.stabilization_epochs)


@dataclass(slots=True)
class _EnvMemory:
    tracker: SignalTracker
    penalties: dict[Blueprint, float] = field(default_factory=dict)
    rotation_index: int = 0
    last_prune_epoch: int | None = None
    last_epoch: int | None = None
    #: What the last decision saw besides the tracker: the slot it targeted (None without a slot), the
    #: germination embargo and the blueprint penalties.
    last_target: SlotReport | None = None
    last_embargo: int = 0
    last_penalties: Mapping[Blueprint, float] = field(default_factory=dict)
    last_decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class HeuristicEnvState:
    """Everything the heuristic remembers about one env (a snapshot; changing it changes nothing)."""

    signals: TrackerSignals
    blueprint_penalties: Mapping[Blueprint, float]
    rotation_index: int
    last_prune_epoch: int | None
    #: Epochs, counted from the last observed epoch, before the prune embargo lets germination happen again.
    embargo_remaining: int
    last_decision: Decision | None


@dataclass(frozen=True, slots=True)
class _SeedView:
    """A slot with a seed, as the rules read it (``accuracy``: the env's finite accuracy, else ``None``)."""

    index: int
    stage: SeedStage
    seed: SeedReport
    accuracy: float | None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class HeuristicController:
    """Leyline ``Controller``: the rules above, applied to every env independently."""

    def __init__(
        self, slot_config: SlotConfig, topology: Topology = Topology.CNN, config: HeuristicConfig | None = None
    ) -> None:
        self.slot_config = slot_config
        self.topology = topology
        self.config = config if config is not None else HeuristicConfig()
        rotation = self.config.blueprint_rotation or DEFAULT_ROTATIONS[topology]
        foreign = [b.registry_name for b in rotation if b not in TOPOLOGY_BLUEPRINTS[topology]]
        if foreign:
            raise ConfigError(f"blueprints {foreign} are not {topology.value} blueprints")
        self.rotation = rotation
        self._envs = EpisodeEnvs(self.name)
        self._memory: list[_EnvMemory] = []

    @property
    def name(self) -> str:
        return "heuristic"

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)
        self._memory = [_EnvMemory(SignalTracker(self.config.tracker_config())) for _ in range(n_envs)]

    def env_state(self, env_id: int) -> HeuristicEnvState:
        memory = self._memory[env_id]
        return HeuristicEnvState(
            signals=memory.tracker.signals,
            blueprint_penalties=MappingProxyType(dict(memory.penalties)),
            rotation_index=memory.rotation_index,
            last_prune_epoch=memory.last_prune_epoch,
            embargo_remaining=self._embargo_remaining(memory.last_prune_epoch, memory.last_epoch),
            last_decision=memory.last_decision,
        )

    def explain(self, env_id: int) -> dict[str, object]:
        """The rule behind the env's last decision and the signals it saw: the tracker's, the germination
        embargo and blueprint penalties, and the targeted seed's figures (leyline ``ExplainingController``)."""
        memory = self._memory[env_id]
        decision = memory.last_decision
        if decision is None:
            raise InvalidStateMachineError(f"{self.name}: explain({env_id}) before the env's first act()")
        signals = memory.tracker.signals
        seen: dict[str, object] = {
            "plateau_epochs": signals.plateau_epochs,
            "stabilized": signals.stabilized,
            "accuracy_gain": signals.accuracy_gain,
            "relative_loss_change": signals.relative_loss_change,
            "embargo_remaining": memory.last_embargo,
            "blueprint_penalties": {b.registry_name: round(p, 4) for b, p in memory.last_penalties.items()},
        }
        target = memory.last_target
        if target is not None and target.seed is not None:
            seed = target.seed
            seen["seed"] = {
                "stage": target.stage.name,
                "blueprint": seed.blueprint.registry_name,
                "epochs_in_stage": seed.epochs_in_stage,
                "alpha": seed.alpha.value,
                "contribution": seed.metrics.contribution,
                "accuracy_at_stage_entry": seed.metrics.accuracy_at_stage_entry,
                "gate_blocked_epochs": seed.gate_blocked_epochs,
            }
        return {"rule": decision.reason.value, "signals": seen}

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        self._envs.check(env_ids, observations)
        masks = build_mask_arrays(observations, self.slot_config, self.topology)
        actions = []
        for row, (env, observation) in enumerate(zip(env_ids, observations, strict=True)):
            memory = self._memory[env]
            signals = memory.tracker.update(observation.val_loss, observation.val_accuracy)
            self._decay_penalties(memory)
            decision = self._decide(memory, observation, signals, _Allowed(masks, row))
            self._remember(memory, observation, decision)
            actions.append(decision.to_action())
        return actions

    # --- the rules ----------------------------------------------------------------------------------------

    def _decide(
        self, memory: _EnvMemory, observation: EnvObservation, signals: TrackerSignals, allowed: _Allowed
    ) -> Decision:
        accuracy = _finite(observation.val_accuracy)
        seeds = [
            _SeedView(index, report.stage, report.seed, accuracy)
            for index, report in enumerate(observation.slots)
            if report.seed is not None
        ]
        for rule in (self._safety_prune, self._holding, self._blending, self._young_seed):
            for view in seeds:
                decision = rule(view)
                if decision is not None and allowed(decision.op, view.index):
                    return decision
        return self._germination(memory, observation, signals, allowed) or Decision(DecisionReason.NOTHING_TO_DO)

    def _safety_prune(self, view: _SeedView) -> Decision | None:
        cfg, metrics = self.config, view.seed.metrics
        if view.stage is SeedStage.TRAINING and view.seed.gate_blocked_epochs >= cfg.stalled_prune_epochs:
            return Decision(DecisionReason.PRUNE_STALLED, slot=view.index)
        if view.accuracy is None:
            return None
        entry = _finite(metrics.accuracy_at_stage_entry)
        if entry is not None and view.seed.epochs_in_stage >= cfg.failure_min_epochs_in_stage:
            if entry - view.accuracy > cfg.failure_drop:
                return Decision(DecisionReason.PRUNE_ACCURACY_DROP, slot=view.index)
        contribution = _finite(metrics.contribution)
        germination = _finite(metrics.accuracy_at_germination)
        if (
            view.seed.age_epochs >= cfg.ransomware_min_age
            and contribution is not None
            and germination is not None
            and contribution > cfg.ransomware_contribution
            and view.accuracy - germination < 0.0
        ):
            return Decision(DecisionReason.PRUNE_RANSOMWARE, slot=view.index)
        return None

    def _holding(self, view: _SeedView) -> Decision | None:
        if view.stage is not SeedStage.HOLDING:
            return None
        contribution = _finite(view.seed.metrics.contribution)
        if contribution is None:
            return None  # wait for a counterfactual measurement
        if contribution > self.config.min_fossilize_contribution:
            return Decision(DecisionReason.FOSSILIZE_CONTRIBUTION, slot=view.index)
        return Decision(DecisionReason.PRUNE_LOW_CONTRIBUTION, slot=view.index)

    def _blending(self, view: _SeedView) -> Decision | None:
        alpha = view.seed.alpha
        if view.stage is not SeedStage.BLENDING or alpha.ramping:
            return None
        if alpha.target < 1.0 - ALPHA_TOLERANCE:
            return Decision(DecisionReason.RETARGET_FULL_ALPHA, slot=view.index, alpha_target=AlphaTarget.FULL)
        if alpha.value >= 1.0 - ALPHA_TOLERANCE:
            return Decision(DecisionReason.ADVANCE_FULL_ALPHA, slot=view.index)
        return None

    def _young_seed(self, view: _SeedView) -> Decision | None:
        if view.stage in (SeedStage.GERMINATED, SeedStage.TRAINING):
            return Decision(DecisionReason.ADVANCE_STAGE, slot=view.index)
        return None

    def _germination(
        self, memory: _EnvMemory, observation: EnvObservation, signals: TrackerSignals, allowed: _Allowed
    ) -> Decision | None:
        """Germinate after ``plateau_epochs_to_germinate`` plateau epochs, not before ``min_germinate_epoch``,
        only once the host has stabilized, and never within ``prune_embargo_epochs`` of a prune."""
        cfg = self.config
        slot = allowed.first_slot(LifecycleOp.GERMINATE)
        if (
            slot is None
            or observation.epoch < cfg.min_germinate_epoch
            or signals.plateau_epochs < cfg.plateau_epochs_to_germinate
            or not signals.stabilized
            or self._embargo_remaining(memory.last_prune_epoch, observation.epoch) > 0
        ):
            return None
        blueprint = self._next_blueprint(memory)
        if blueprint is None:
            return None
        return Decision(
            DecisionReason.GERMINATE_ON_PLATEAU,
            slot=slot,
            blueprint=blueprint,
            style=cfg.germination_style,
            tempo=cfg.germination_tempo,
            alpha_target=AlphaTarget.FULL,
        )

    def _embargo_remaining(self, last_prune_epoch: int | None, epoch: int | None) -> int:
        """Epochs until germination is allowed again after the last prune (0 when allowed)."""
        if last_prune_epoch is None or epoch is None:
            return 0
        return max(0, self.config.prune_embargo_epochs - (epoch - last_prune_epoch))

    def _next_blueprint(self, memory: _EnvMemory) -> Blueprint | None:
        """The next blueprint of the rotation whose prune penalty is below the threshold."""
        for step in range(len(self.rotation)):
            blueprint = self.rotation[(memory.rotation_index + step) % len(self.rotation)]
            if memory.penalties.get(blueprint, 0.0) < self.config.penalty_threshold:
                return blueprint
        return None

    # --- memory -------------------------------------------------------------------------------------------

    def _decay_penalties(self, memory: _EnvMemory) -> None:
        """Once per epoch: penalties shrink by ``penalty_decay`` and vanish below ``penalty_drop_below``."""
        decayed = {b: p * self.config.penalty_decay for b, p in memory.penalties.items()}
        memory.penalties = {b: p for b, p in decayed.items() if p >= self.config.penalty_drop_below}

    def _remember(self, memory: _EnvMemory, observation: EnvObservation, decision: Decision) -> None:
        memory.last_target = None if decision.slot is None else observation.slots[decision.slot]
        memory.last_embargo = self._embargo_remaining(memory.last_prune_epoch, observation.epoch)
        memory.last_penalties = dict(memory.penalties)
        memory.last_decision = decision
        memory.last_epoch = observation.epoch
        if decision.op is LifecycleOp.PRUNE and decision.slot is not None:
            seed = observation.slots[decision.slot].seed
            if seed is not None:
                penalty = memory.penalties.get(seed.blueprint, 0.0) + self.config.prune_penalty
                memory.penalties[seed.blueprint] = penalty
            memory.last_prune_epoch = observation.epoch
        if decision.op is LifecycleOp.GERMINATE and decision.blueprint is not None:
            memory.rotation_index = (self.rotation.index(decision.blueprint) + 1) % len(self.rotation)


class _Allowed:
    """The masks of one env, as questions the rules ask."""

    def __init__(self, masks: MaskArrays, row: int) -> None:
        self._slot_by_op = masks.slot_by_op[row]

    def __call__(self, op: LifecycleOp, slot: int) -> bool:
        return bool(self._slot_by_op[op, slot])

    def first_slot(self, op: LifecycleOp) -> int | None:
        for slot, allowed in enumerate(self._slot_by_op[op]):
            if allowed:
                return slot
        return None
