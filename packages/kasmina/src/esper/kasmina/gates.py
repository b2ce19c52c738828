"""Lifecycle gates (docs/design/gates.md): the checks an ADVANCE or FOSSILIZE must pass, and their thresholds.

A refused gate is an answer, not an error: it says which check failed so the action can be reported as
unsuccessful and the policy sees it in its next observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from esper.kasmina.seed import Seed
from esper.leyline import (
    ALPHA_TOLERANCE,
    CIFAR_EPISODE_EPOCHS,
    MIN_FOSSILIZE_CONTRIBUTION,
    MIN_GRADIENT_HEALTH,
    ConfigError,
    SeedStage,
)

#: The TRAINING dwell before BLENDING, given at the CIFAR horizon; ``GateConfig.for_horizon`` scales it with the
#: episode length, so a shorter task keeps the same share of its episode for a seed to prove itself.
REFERENCE_MIN_TRAINING_EPOCHS = 10
REFERENCE_HORIZON_EPOCHS = CIFAR_EPISODE_EPOCHS


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Gate thresholds of one task. ``for_horizon`` scales the TRAINING dwell with the episode length."""

    min_training_epochs: int = REFERENCE_MIN_TRAINING_EPOCHS
    min_gradient_health: float = MIN_GRADIENT_HEALTH
    #: Percentage points; positive on purpose (fossilizing a seed that improves nothing is reward hacking).
    min_fossilize_contribution: float = MIN_FOSSILIZE_CONTRIBUTION

    def __post_init__(self) -> None:
        if self.min_training_epochs < 0:
            raise ConfigError(f"min_training_epochs must be >= 0, got {self.min_training_epochs}")
        if not 0.0 <= self.min_gradient_health <= 1.0:
            raise ConfigError(f"min_gradient_health must be in [0, 1], got {self.min_gradient_health}")
        if not self.min_fossilize_contribution > 0.0:
            raise ConfigError(
                f"min_fossilize_contribution must be > 0 percentage points, got {self.min_fossilize_contribution}"
            )

    @classmethod
    def for_horizon(
        cls,
        episode_epochs: int,
        *,
        min_gradient_health: float = MIN_GRADIENT_HEALTH,
        min_fossilize_contribution: float = MIN_FOSSILIZE_CONTRIBUTION,
    ) -> GateConfig:
        """Scale the reference TRAINING dwell (10 epochs at 150) to ``episode_epochs`` (4 at 60), at least 1."""
        if episode_epochs < 1:
            raise ConfigError(f"episode_epochs must be >= 1, got {episode_epochs}")
        scaled = round(REFERENCE_MIN_TRAINING_EPOCHS * episode_epochs / REFERENCE_HORIZON_EPOCHS)
        return cls(max(1, scaled), min_gradient_health, min_fossilize_contribution)


class GateCheck(StrEnum):
    """The individual checks; a refused gate names the first one that failed."""

    TRAINING_EPOCHS = "min_training_epochs"
    GRADIENT_MEASURED = "gradient_measured"
    GRADIENT_NOT_EXPLODING = "gradient_not_exploding"
    GRADIENT_HEALTH = "min_gradient_health"
    ALPHA_TARGET_FULL = "alpha_target_full"
    ALPHA_RAMP_FINISHED = "alpha_ramp_finished"
    ALPHA_NOT_RAMPING = "alpha_not_ramping"
    CONTRIBUTION_MEASURED = "contribution_measured"
    CONTRIBUTION = "min_fossilize_contribution"


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    check: GateCheck | None = None
    reason: str = "gate passed"


def _refuse(check: GateCheck, reason: str) -> GateResult:
    return GateResult(False, check, reason)


def check_gate(target: SeedStage, seed: Seed, config: GateConfig) -> GateResult:
    """Can ``seed`` enter ``target``? (The caller has already checked the transition is in the table.)"""
    if target is SeedStage.BLENDING:
        return _blending_gate(seed, config)
    if target is SeedStage.HOLDING:
        return _holding_gate(seed)
    if target is SeedStage.FOSSILIZED:
        return _fossilize_gate(seed, config)
    return GateResult(True)


def _blending_gate(seed: Seed, config: GateConfig) -> GateResult:
    if seed.epochs_in_stage < config.min_training_epochs:
        return _refuse(
            GateCheck.TRAINING_EPOCHS,
            f"{seed.epochs_in_stage} epochs in TRAINING < min_training_epochs {config.min_training_epochs}",
        )
    summary = seed.gradients.summary()
    if summary is None:
        return _refuse(GateCheck.GRADIENT_MEASURED, "seed gradient health has not been measured")
    if summary.exploding:
        return _refuse(
            GateCheck.GRADIENT_NOT_EXPLODING,
            f"seed gradients are exploding (mean norm {summary.norm:.3g}, peak {summary.peak:.3g})",
        )
    if summary.health < config.min_gradient_health:
        return _refuse(
            GateCheck.GRADIENT_HEALTH,
            f"gradient health {summary.health:.3f} < min_gradient_health {config.min_gradient_health}",
        )
    return GateResult(True)


def _holding_gate(seed: Seed) -> GateResult:
    alpha = seed.alpha
    if abs(alpha.target - 1.0) > ALPHA_TOLERANCE:
        return _refuse(GateCheck.ALPHA_TARGET_FULL, f"alpha target is {alpha.target}, HOLDING needs 1.0")
    if alpha.ramping or abs(alpha.value - 1.0) > ALPHA_TOLERANCE:
        return _refuse(
            GateCheck.ALPHA_RAMP_FINISHED,
            f"alpha ramp not finished: alpha {alpha.value:.4f} ({alpha.steps_done}/{alpha.steps_total} steps)",
        )
    return GateResult(True)


def _fossilize_gate(seed: Seed, config: GateConfig) -> GateResult:
    if seed.alpha.ramping:
        return _refuse(GateCheck.ALPHA_NOT_RAMPING, f"alpha is ramping {seed.alpha.mode.name}")
    contribution = seed.metrics.contribution
    if contribution is None or not seed.contribution_in_stage:
        return _refuse(
            GateCheck.CONTRIBUTION_MEASURED, "no counterfactual contribution measured since entering HOLDING"
        )
    if contribution < config.min_fossilize_contribution:
        return _refuse(
            GateCheck.CONTRIBUTION,
            f"contribution {contribution:.3f} pp < min_fossilize_contribution {config.min_fossilize_contribution}",
        )
    return GateResult(True)
