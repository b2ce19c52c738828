"""A seed slot: at most one seed, its lifecycle stage, the one per-epoch tick, and the slot's forward.

Every stage change goes through ``_move_to``, which enforces leyline's transition table. Every epoch counter
(seed age, epochs in stage, embargo and reset dwell, alpha ramp steps, measurement freshness) is advanced by
``tick`` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from esper.kasmina.blending import blend, incubate, pass_host_gradient
from esper.kasmina.gates import GateCheck, GateConfig, check_gate
from esper.kasmina.seed import Seed
from esper.leyline import (
    ADVANCE_TARGETS,
    ALPHA_TOLERANCE,
    FAILURE_DWELL_EPOCHS,
    FAILURE_STAGES,
    SEED_BEARING_STAGES,
    STYLE_TABLE,
    TEMPO_EPOCHS,
    AlphaCurve,
    BlendStyle,
    InvalidStateMachineError,
    InvalidTransitionError,
    LifecycleOp,
    SeedStage,
    SlotCondition,
    SlotId,
    SlotReport,
    is_valid_transition,
    slot_refusal,
)

#: Stages whose seed is wired into the forward (a GERMINATED seed exists but is not yet connected).
WIRED_STAGES: frozenset[SeedStage] = SEED_BEARING_STAGES - {SeedStage.GERMINATED}


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """Outcome of one lifecycle action. A refused action (``success=False``) changed nothing. ``gate_check``
    names the gate check that refused a legal action (None when it executed or was illegal)."""

    success: bool
    reason: str
    gate_check: GateCheck | None = None


class SeedSlot(nn.Module):
    """One injection point. Its forward (called by the host's hook) is the identity unless a seed is wired in."""

    def __init__(self, slot_id: SlotId, channels: int, gate_config: GateConfig) -> None:
        super().__init__()
        self.slot_id = slot_id
        self.channels = channels
        self.gate_config = gate_config
        self.seed: Seed | None = None
        self.stage = SeedStage.DORMANT
        #: Epochs left in the current failure stage, this one included (0 elsewhere, and in the transient PRUNED).
        self.dwell_remaining = 0
        #: Bumped whenever the seed object changes, so trainers know when to rebuild seed optimizers.
        self.generation = 0
        #: Per-sample alphas [N, 1, ...] set only during a counterfactual forward.
        self.alpha_override: Tensor | None = None

    # ----------------------------------------------------------------------------------------------- queries
    @property
    def wired(self) -> bool:
        """The seed takes part in the forward (the model hooks this slot into the host only then)."""
        return self.stage in WIRED_STAGES

    @property
    def affects_output(self) -> bool:
        """The seed changes the model's output: alpha > 0, or fossilized."""
        seed = self.seed
        return seed is not None and self.wired and (self.stage is SeedStage.FOSSILIZED or seed.alpha.value > 0.0)

    def condition(self) -> SlotCondition:
        """What leyline's legality rule reads about this slot."""
        seed = self.seed
        if seed is None:
            return SlotCondition(self.stage)
        return SlotCondition.of_seed(self.stage, seed.age, seed.alpha.ramping)

    def refusal(self, op: LifecycleOp) -> ExecutionResult | None:
        """The refusal of ``op`` by leyline's rule for this slot on its own, or None when it is legal here."""
        reason = slot_refusal(op, self.condition())
        return None if reason is None else ExecutionResult(False, f"slot {self.slot_id}: {reason}")

    def require_seed(self) -> Seed:
        if self.seed is None:
            raise InvalidStateMachineError(f"slot {self.slot_id} in {self.stage.name} has no seed")
        return self.seed

    # ----------------------------------------------------------------------------------------------- actions
    def germinate(self, seed: Seed, val_accuracy: float) -> ExecutionResult:
        refused = self.refusal(LifecycleOp.GERMINATE)
        if refused is not None:
            return refused
        self._move_to(SeedStage.GERMINATED)
        self._set_seed(seed)
        seed.record_germination(val_accuracy)
        return ExecutionResult(True, f"germinated {seed.blueprint.registry_name} in {self.slot_id}")

    def advance(self, val_accuracy: float) -> ExecutionResult:
        refused = self.refusal(LifecycleOp.ADVANCE)
        if refused is not None:
            return refused
        target = ADVANCE_TARGETS[self.stage]
        seed = self.require_seed()
        gate = check_gate(target, seed, self.gate_config)
        if not gate.passed:
            return ExecutionResult(False, f"{target.name} gate refused ({gate.check}): {gate.reason}", gate.check)
        self._move_to(target)
        seed.begin_stage(val_accuracy)
        if target is SeedStage.BLENDING:
            curve = STYLE_TABLE[seed.style][0]
            seed.ramp_alpha(seed.blend_target, TEMPO_EPOCHS[seed.tempo], curve)
        return ExecutionResult(True, f"{self.slot_id} advanced to {target.name}")

    def fossilize(self, val_accuracy: float) -> ExecutionResult:
        refused = self.refusal(LifecycleOp.FOSSILIZE)
        if refused is not None:
            return refused
        seed = self.require_seed()
        gate = check_gate(SeedStage.FOSSILIZED, seed, self.gate_config)
        if not gate.passed:
            return ExecutionResult(False, f"FOSSILIZED gate refused ({gate.check}): {gate.reason}", gate.check)
        self._move_to(SeedStage.FOSSILIZED)
        seed.begin_stage(val_accuracy)
        return ExecutionResult(True, f"{self.slot_id} fossilized")

    def prune(self, steps: int, curve: AlphaCurve) -> ExecutionResult:
        """Instant when ``steps`` is 0 (or alpha is already 0); else alpha ramps down over ``steps`` ticks with
        the seed frozen, and the prune completes at the ramp's last tick."""
        refused = self.refusal(LifecycleOp.PRUNE)
        if refused is not None:
            return refused
        seed = self.require_seed()
        if steps == 0 or seed.alpha.value == 0.0:
            self._move_to(SeedStage.PRUNED)
            return ExecutionResult(True, f"{self.slot_id} pruned")
        seed.ramp_alpha(0.0, steps, curve)
        seed.prune_pending = True
        return ExecutionResult(True, f"{self.slot_id} prune scheduled over {steps} epochs")

    def set_alpha_target(
        self, target: float, steps: int, curve: AlphaCurve, style: BlendStyle, val_accuracy: float
    ) -> ExecutionResult:
        """Ramp alpha to ``target`` and re-select the blend operator from ``style``. A target below 1 in HOLDING
        moves the seed back to BLENDING."""
        refused = self.refusal(LifecycleOp.SET_ALPHA_TARGET)
        if refused is not None:
            return refused
        seed = self.require_seed()
        if self.stage is SeedStage.HOLDING and 1.0 - target > ALPHA_TOLERANCE:
            self._move_to(SeedStage.BLENDING)
            seed.begin_stage(val_accuracy)
        seed.select_style(style)
        seed.ramp_alpha(target, steps, curve)
        return ExecutionResult(True, f"{self.slot_id} alpha -> {target} over {steps} epochs")

    # ------------------------------------------------------------------------------------------------- epoch
    def tick(self) -> None:
        """One epoch passes: the only place any of this slot's counters move.

        PRUNED is never observed: the tick after an instant prune, and the tick that ends a scheduled prune's
        ramp, is already the first of the ``EMBARGO_EPOCHS`` embargo epochs, then ``RESET_EPOCHS`` in
        RESETTING, whatever the kind of prune."""
        if self.stage is SeedStage.PRUNED:
            self._enter_next_failure_stage()
        elif self.stage in FAILURE_STAGES:
            if self.dwell_remaining > 1:
                self.dwell_remaining -= 1
            else:
                self._enter_next_failure_stage()
        elif self.seed is not None and self.seed.tick():
            self._move_to(SeedStage.PRUNED)
            self._enter_next_failure_stage()
        elif self.seed is not None and self.stage is SeedStage.TRAINING:
            self._track_blending_gate(self.seed)

    def _track_blending_gate(self, seed: Seed) -> None:
        """Count the epochs at whose end a TRAINING seed, past its minimum dwell, would still be refused by the
        BLENDING gate: a seed that cannot advance (seeds develop one at a time, so it blocks all growth)."""
        gate = check_gate(SeedStage.BLENDING, seed, self.gate_config)
        blocked = not gate.passed and gate.check is not GateCheck.TRAINING_EPOCHS
        seed.gate_blocked_epochs = seed.gate_blocked_epochs + 1 if blocked else 0

    def _enter_next_failure_stage(self) -> None:
        (successor,) = (s for s in SeedStage if is_valid_transition(self.stage, s))
        self._move_to(successor)
        self.dwell_remaining = FAILURE_DWELL_EPOCHS.get(successor, 0)

    # --------------------------------------------------------------------------------------------- internals
    def _move_to(self, target: SeedStage) -> None:
        if not is_valid_transition(self.stage, target):
            raise InvalidTransitionError(
                f"slot {self.slot_id}: {self.stage.name} -> {target.name} is not in the transition table"
            )
        self.stage = target
        if target not in SEED_BEARING_STAGES and self.seed is not None:
            self._set_seed(None)

    def _set_seed(self, seed: Seed | None) -> None:
        self.seed = seed
        self.generation += 1

    def restore_state(self, stage: SeedStage, dwell_remaining: int, seed: Seed | None) -> None:
        """Put the slot in a stage read from a checkpoint or snapshot (time travel, not a transition)."""
        if (stage in SEED_BEARING_STAGES) != (seed is not None):
            raise InvalidStateMachineError(f"slot {self.slot_id}: stage {stage.name} and seed presence disagree")
        self.stage = stage
        self.dwell_remaining = dwell_remaining
        if seed is not self.seed:
            self._set_seed(seed)

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, h: Tensor) -> Tensor:
        """Slot output for the host activation ``h`` ([B, C, H, W] or [B, T, C]), same shape."""
        seed = self.require_seed()
        fossil = self.stage is SeedStage.FOSSILIZED
        h_in = h if fossil else h.detach()
        s: Tensor = seed.module(h_in)
        alpha: float | Tensor
        if self.alpha_override is not None:
            alpha = self.alpha_override
        elif self.stage is SeedStage.TRAINING:
            return incubate(h, s)
        else:
            alpha = seed.alpha.value
        y = blend(seed.operator, h_in, s, alpha, seed.gate)
        return y if fossil else pass_host_gradient(h, y)

    def host_hook(self, _module: nn.Module, _args: tuple[object, ...], output: Tensor) -> Tensor:
        """Forward hook on the host submodule this slot sits after: replaces its output by the slot's."""
        return self.forward(output)

    def report(self) -> SlotReport:
        seed = self.seed
        return SlotReport(
            slot_id=self.slot_id,
            stage=self.stage,
            seed=seed.report() if seed is not None else None,
            dwell_remaining=self.dwell_remaining,
        )
