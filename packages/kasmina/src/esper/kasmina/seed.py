"""A germinated seed: its module and blend gate, the choices made at germination, its alpha, its counters and
what has been measured about it. The slot decides stages; the seed keeps everything that travels with it."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from esper.kasmina.alpha import ALPHA_TARGET_VALUES, AlphaController
from esper.kasmina.blending import BlendGate
from esper.kasmina.blueprints import BLUEPRINTS, SeedModule
from esper.kasmina.gradient_health import GradientMonitor
from esper.leyline import (
    STYLE_TABLE,
    AlphaCurve,
    AlphaMode,
    AlphaTarget,
    BlendOperator,
    BlendStyle,
    Blueprint,
    SeedMetrics,
    SeedReport,
    Tempo,
    Topology,
)


class Seed(nn.Module):
    """One seed. ``module`` is the blueprint, ``gate`` the learned gate of the GATE operator (its parameters count
    as the seed's while the operator is GATE). ``serial`` identifies this germination within its model
    (counterfactual rows refer to it)."""

    def __init__(
        self,
        module: SeedModule,
        gate: BlendGate,
        *,
        blueprint: Blueprint,
        style: BlendStyle,
        tempo: Tempo,
        blend_target: float,
        serial: int,
    ) -> None:
        super().__init__()
        self.module = module
        self.gate = gate
        self.blueprint = blueprint
        self.style = style
        self.operator = STYLE_TABLE[style][1]
        self.tempo = tempo
        #: The alpha the BLENDING ramp heads for, chosen at germination.
        self.blend_target = blend_target
        self.serial = serial
        self.alpha = AlphaController()
        self.age = 0
        self.epochs_in_stage = 0
        self.metrics = SeedMetrics()
        #: A contribution was measured since the seed entered its current stage (the FOSSILIZE gate needs one).
        self.contribution_in_stage = False
        #: Epochs since ``metrics.contribution`` was measured (the full-alpha probe does not reset it).
        self.contribution_age: int | None = None
        self.gradients = GradientMonitor()
        #: Consecutive epochs the BLENDING gate would have refused this TRAINING seed after its minimum dwell.
        self.gate_blocked_epochs = 0
        #: A PRUNE scheduled as an alpha ramp down: the prune completes when the ramp ends.
        self.prune_pending = False
        #: ``requires_grad`` of every parameter before a down-ramp froze them (restored when it ends).
        self.saved_requires_grad: tuple[bool, ...] | None = None

    @classmethod
    def create(
        cls,
        *,
        topology: Topology,
        blueprint: Blueprint,
        channels: int,
        style: BlendStyle,
        tempo: Tempo,
        alpha_target: AlphaTarget,
        generator: torch.Generator,
        serial: int,
    ) -> Seed:
        """A new seed on the CPU (move it with ``.to``); every random draw comes from ``generator``."""
        return cls(
            BLUEPRINTS.build(topology, blueprint, channels, generator),
            BlendGate.create(channels, topology),
            blueprint=blueprint,
            style=style,
            tempo=tempo,
            blend_target=ALPHA_TARGET_VALUES[alpha_target],
            serial=serial,
        )

    def param_count(self) -> int:
        """What the seed costs: its module's parameters, plus the blend gate's only while the operator is GATE
        (under ADD and MULTIPLY the gate takes no part in the forward). Frozen or not: a frozen seed still
        costs."""
        parts = (self.module, self.gate) if self.operator is BlendOperator.GATE else (self.module,)
        return sum(p.numel() for part in parts for p in part.parameters())

    def observe_gradients(self) -> None:
        self.gradients.observe([p for p in self.parameters() if p.requires_grad])

    def select_style(self, style: BlendStyle) -> None:
        """Re-select the blend operator (SET_ALPHA_TARGET's style head); the ramp curve is chosen separately."""
        self.style = style
        self.operator = STYLE_TABLE[style][1]

    def record_germination(self, val_accuracy: float) -> None:
        self.begin_stage(val_accuracy)
        self.metrics = dataclasses.replace(self.metrics, accuracy_at_germination=val_accuracy)

    def begin_stage(self, val_accuracy: float) -> None:
        self.epochs_in_stage = 0
        self.gate_blocked_epochs = 0
        self.contribution_in_stage = False
        self.metrics = dataclasses.replace(self.metrics, accuracy_at_stage_entry=val_accuracy)

    def ramp_alpha(self, target: float, steps: int, curve: AlphaCurve) -> None:
        """Retarget alpha; a ramp down freezes the seed's parameters until it ends."""
        self.alpha.retarget(target, steps, curve)
        if self.alpha.mode is AlphaMode.DOWN:
            self.saved_requires_grad = tuple(p.requires_grad for p in self.parameters())
            for parameter in self.parameters():
                parameter.requires_grad_(False)

    def tick(self) -> bool:
        """One epoch passes. Returns True when a scheduled prune's ramp just ended (the slot then prunes)."""
        self.age += 1
        self.epochs_in_stage += 1
        since = self.metrics.epochs_since_measurement
        if since is not None:
            self.metrics = dataclasses.replace(self.metrics, epochs_since_measurement=since + 1)
        if self.contribution_age is not None:
            self.contribution_age += 1
        self.gradients.close_epoch()
        if not self.alpha.step():
            return False
        if self.prune_pending:
            return True
        if self.saved_requires_grad is not None:
            for parameter, flag in zip(self.parameters(), self.saved_requires_grad, strict=True):
                parameter.requires_grad_(flag)
            self.saved_requires_grad = None
        return False

    def record_contribution(self, contribution: float) -> None:
        """Store a counterfactual contribution (percentage points) and its change per epoch since the last one."""
        previous = self.metrics.contribution
        velocity = self.metrics.contribution_velocity
        if previous is not None and self.contribution_age is not None:
            velocity = (contribution - previous) / max(1, self.contribution_age)
        self.metrics = dataclasses.replace(
            self.metrics, contribution=contribution, contribution_velocity=velocity, epochs_since_measurement=0
        )
        self.contribution_in_stage = True
        self.contribution_age = 0

    def record_full_alpha_contribution(self, contribution: float) -> None:
        """Store what the seed would contribute at alpha = 1 (the probe for a seed still in TRAINING)."""
        self.metrics = dataclasses.replace(
            self.metrics, contribution_at_full_alpha=contribution, epochs_since_measurement=0
        )

    def report(self) -> SeedReport:
        summary = self.gradients.summary()
        metrics = self.metrics
        if summary is not None:
            metrics = dataclasses.replace(metrics, gradient_norm=summary.norm, gradient_health=summary.health)
        return SeedReport(
            blueprint=self.blueprint,
            style=self.style,
            tempo=self.tempo,
            alpha=self.alpha.snapshot(),
            metrics=metrics,
            age_epochs=self.age,
            epochs_in_stage=self.epochs_in_stage,
            param_count=self.param_count(),
            gate_blocked_epochs=self.gate_blocked_epochs,
        )
