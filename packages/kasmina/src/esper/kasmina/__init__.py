"""Kasmina: hosts, seed slots, the seed lifecycle, blueprints, alpha blending, counterfactuals and the governor.

A trainer uses ``MorphogeneticModel`` (forward, execute, tick, counterfactuals, gradient health, parameter
groups, reports, snapshots and checkpoints) and ``Governor``; the rest is exported for tests and tools.
"""

from esper.kasmina.alpha import AlphaController, curve_value
from esper.kasmina.blending import BlendGate, blend, incubate, pass_host_gradient
from esper.kasmina.blueprints import BLUEPRINTS, BlueprintRegistry, BlueprintSpec, SeedModule
from esper.kasmina.checkpoint import CHECKPOINT_FORMAT, ModelSnapshot
from esper.kasmina.counterfactual import (
    CounterfactualBatching,
    CounterfactualPlan,
    CounterfactualRow,
    RowKind,
    count_correct,
)
from esper.kasmina.gates import GateCheck, GateConfig, GateResult
from esper.kasmina.governor import Governor, GovernorConfig, GovernorVerdict, RollbackReason
from esper.kasmina.gradient_health import GradientSummary, gradient_health
from esper.kasmina.hosts import CNN_HOST_PRESETS, CNNHost, CNNHostConfig
from esper.kasmina.model import MorphogeneticModel
from esper.kasmina.seed import Seed
from esper.kasmina.slot import ExecutionResult, SeedSlot
from esper.kasmina.transformer_host import TRANSFORMER_HOST_PRESETS, TransformerHost, TransformerHostConfig

__all__ = [
    "BLUEPRINTS",
    "CHECKPOINT_FORMAT",
    "CNN_HOST_PRESETS",
    "TRANSFORMER_HOST_PRESETS",
    "AlphaController",
    "BlendGate",
    "BlueprintRegistry",
    "BlueprintSpec",
    "CNNHost",
    "CNNHostConfig",
    "CounterfactualBatching",
    "CounterfactualPlan",
    "CounterfactualRow",
    "ExecutionResult",
    "GateCheck",
    "GateConfig",
    "GateResult",
    "Governor",
    "GovernorConfig",
    "GovernorVerdict",
    "GradientSummary",
    "ModelSnapshot",
    "MorphogeneticModel",
    "RollbackReason",
    "RowKind",
    "Seed",
    "SeedModule",
    "SeedSlot",
    "TransformerHost",
    "TransformerHostConfig",
    "blend",
    "count_correct",
    "curve_value",
    "gradient_health",
    "incubate",
    "pass_host_gradient",
]
