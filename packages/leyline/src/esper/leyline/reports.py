"""Observation and report values: produced by kasmina and simic, consumed by tamiyo. Plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from esper.leyline.actions import AlphaCurve, BlendStyle, LifecycleOp, Tempo
from esper.leyline.blueprints import Blueprint
from esper.leyline.constants import HISTORY_LENGTH
from esper.leyline.errors import ConfigError
from esper.leyline.slots import SlotId
from esper.leyline.stages import FAILURE_STAGES, SEED_BEARING_STAGES, SeedStage


class AlphaMode(IntEnum):
    """What the alpha controller is doing: holding still, ramping up, or ramping down (scheduled prune)."""

    HOLD = 0
    UP = 1
    DOWN = 2


@dataclass(frozen=True, slots=True)
class AlphaSnapshot:
    """Alpha controller state. ``value``, ``target`` in [0, 1]; ``steps_done <= steps_total``."""

    value: float = 0.0
    target: float = 0.0
    mode: AlphaMode = AlphaMode.HOLD
    steps_total: int = 0
    steps_done: int = 0
    curve: AlphaCurve = AlphaCurve.LINEAR

    def __post_init__(self) -> None:
        if not (0.0 <= self.value <= 1.0 and 0.0 <= self.target <= 1.0):
            raise ConfigError(f"alpha and target must be in [0, 1], got value={self.value} target={self.target}")
        if not 0 <= self.steps_done <= self.steps_total:
            raise ConfigError(f"need 0 <= steps_done <= steps_total, got {self.steps_done}/{self.steps_total}")

    @property
    def ramping(self) -> bool:
        return self.mode is not AlphaMode.HOLD


@dataclass(frozen=True, slots=True)
class SeedMetrics:
    """What has been measured about a seed. ``None`` means "not measured yet", never zero.

    Contributions are in accuracy percentage points (validation accuracy with current alphas minus accuracy
    with this slot's alpha forced to 0).
    """

    contribution: float | None = None
    #: The alpha = 1 probe for a seed still in TRAINING (alpha 0): what it would contribute if fully blended.
    contribution_at_full_alpha: float | None = None
    #: Change of ``contribution`` per epoch between its last two measurements (0 until there are two).
    contribution_velocity: float = 0.0
    #: Epochs since the counterfactual was last measured (freshness); ``None`` if never.
    epochs_since_measurement: int | None = None
    #: Global L2 norm of the seed's gradients in the last epoch, and its health score in [0, 1].
    gradient_norm: float | None = None
    gradient_health: float | None = None
    #: Validation accuracy (percent) when the seed entered its current stage, and when it was germinated.
    accuracy_at_stage_entry: float | None = None
    accuracy_at_germination: float | None = None


@dataclass(frozen=True, slots=True)
class SeedReport:
    """A seed that exists in a slot (live or fossilized)."""

    blueprint: Blueprint
    style: BlendStyle
    tempo: Tempo
    alpha: AlphaSnapshot
    metrics: SeedMetrics
    age_epochs: int
    epochs_in_stage: int
    #: What the seed costs: its module's parameters, plus its blend gate's under the GATE operator; frozen or not
    #: (a frozen seed still costs).
    param_count: int
    #: Consecutive epochs at whose end this TRAINING seed had served its minimum dwell and the BLENDING gate
    #: would still have refused it (gradient health unmeasured, exploding or too low): a stalled seed that can
    #: never advance, and that blocks every other germination until something prunes it. 0 in other stages.
    gate_blocked_epochs: int = 0

    def __post_init__(self) -> None:
        if self.blueprint is Blueprint.NOOP:
            raise ConfigError("a seed report needs a real blueprint, not NOOP")
        if min(self.age_epochs, self.epochs_in_stage, self.param_count, self.gate_blocked_epochs) < 0:
            raise ConfigError("seed age, epochs in stage, parameter count and gate-blocked epochs must be >= 0")


@dataclass(frozen=True, slots=True)
class SlotReport:
    """One slot, always present: an empty slot is ``stage=DORMANT, seed=None``, not a missing entry.

    ``seed`` is set exactly when the stage bears a seed (live or fossilized). ``dwell_remaining`` counts the
    epochs left in a failure stage (embargo, reset) and is 0 elsewhere.
    """

    slot_id: SlotId
    stage: SeedStage = SeedStage.DORMANT
    seed: SeedReport | None = None
    dwell_remaining: int = 0

    def __post_init__(self) -> None:
        bears_seed = self.stage in SEED_BEARING_STAGES
        if bears_seed != (self.seed is not None):
            raise ConfigError(
                f"slot {self.slot_id}: stage {self.stage.name} {'needs' if bears_seed else 'cannot have'} a seed report"
            )
        if self.dwell_remaining < 0 or (self.dwell_remaining > 0 and self.stage not in FAILURE_STAGES):
            raise ConfigError(f"slot {self.slot_id}: dwell_remaining only counts down in failure stages")

    @classmethod
    def empty(cls, slot_id: SlotId) -> SlotReport:
        return cls(slot_id)


@dataclass(frozen=True, slots=True)
class LastAction:
    """The previous step's decision and whether executing it changed anything."""

    op: LifecycleOp
    slot: int
    success: bool


@dataclass(frozen=True, slots=True)
class EnvObservation:
    """Everything a controller sees about one environment after a host epoch.

    Histories hold up to ``HISTORY_LENGTH`` values from *earlier* epochs, oldest first (the current values are
    ``val_loss`` / ``val_accuracy``). Accuracy is in percent. ``slots`` follows the slot config's order.
    """

    epoch: int
    max_epochs: int
    val_loss: float
    val_accuracy: float
    slots: tuple[SlotReport, ...]
    loss_history: tuple[float, ...] = ()
    accuracy_history: tuple[float, ...] = ()
    #: Germinations still allowed this episode (the seed cap).
    germinations_remaining: int = 0
    last_action: LastAction | None = None
    #: Parameters of the host alone, for scaling the seeds' cost.
    host_param_count: int = 0

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or not 0 <= self.epoch <= self.max_epochs:
            raise ConfigError(f"need 0 <= epoch <= max_epochs and max_epochs >= 1, got {self.epoch}/{self.max_epochs}")
        if not self.slots:
            raise ConfigError("an observation needs at least one slot report")
        if len(self.loss_history) > HISTORY_LENGTH or len(self.accuracy_history) > HISTORY_LENGTH:
            raise ConfigError(f"histories hold at most {HISTORY_LENGTH} epochs")
        if self.germinations_remaining < 0:
            raise ConfigError("germinations_remaining must be >= 0")
