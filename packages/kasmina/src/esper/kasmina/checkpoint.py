"""Capturing and restoring model state: full lifecycle checkpoints, which are also the governor's snapshots.

Format (docs/design/lifecycle.md#snapshots-and-checkpoints): plain dicts, lists, strings, numbers, bools, None
and tensors, so ``torch.load(..., weights_only=True)`` reads it. Enums are stored as their stable integer values.

    {"format": CHECKPOINT_FORMAT, "topology": "cnn", "slot_ids": ["r0c0", ...],
     "host": host state_dict, "generator": germination generator state, "next_serial": int,
     "slots": [{"slot_id", "stage", "dwell_remaining", "seed": seed record or None}, ...]}

A seed record holds the germination choices, the alpha controller, counters, metrics, the last gradient
summary, pending-prune and frozen-parameter flags, and the state_dict of the seed module and its gate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import Tensor, nn

from esper.kasmina.alpha import AlphaController
from esper.kasmina.blending import BlendGate
from esper.kasmina.blueprints import BLUEPRINTS
from esper.kasmina.gradient_health import GradientMonitor, GradientSummary
from esper.kasmina.seed import Seed
from esper.kasmina.slot import SeedSlot
from esper.leyline import (
    SEED_BEARING_STAGES,
    BlendStyle,
    Blueprint,
    CheckpointError,
    SeedMetrics,
    SeedStage,
    Tempo,
    Topology,
)

CHECKPOINT_FORMAT = "esper.kasmina.lifecycle/2"

Record = dict[str, object]


def cloned_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state_dict detached from the live tensors (they keep training after the capture)."""
    return {name: tensor.detach().clone() for name, tensor in state.items()}


def seed_record(seed: Seed) -> Record:
    summary = seed.gradients.summary()
    return {
        "blueprint": int(seed.blueprint),
        "style": int(seed.style),
        "tempo": int(seed.tempo),
        "blend_target": seed.blend_target,
        "serial": seed.serial,
        "alpha": seed.alpha.state(),
        "age": seed.age,
        "epochs_in_stage": seed.epochs_in_stage,
        "gate_blocked_epochs": seed.gate_blocked_epochs,
        "metrics": asdict(seed.metrics),
        "contribution_in_stage": seed.contribution_in_stage,
        "contribution_age": seed.contribution_age,
        "gradients": None if summary is None else asdict(summary),
        "prune_pending": seed.prune_pending,
        "saved_requires_grad": None if seed.saved_requires_grad is None else list(seed.saved_requires_grad),
        "requires_grad": [p.requires_grad for p in seed.parameters()],
        "state": cloned_state(seed.state_dict()),
    }


def check_state_fits(module: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Raise ``CheckpointError`` unless ``module.load_state_dict(state)`` would succeed.

    ``load_state_dict`` copies every tensor that fits before it reports the ones that do not, so a refused load
    would already have overwritten part of the module: everything is checked first.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"a state_dict must be a mapping, got {type(state).__name__}")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"state_dict does not fit the module: missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if not isinstance(tensor, Tensor):
            raise CheckpointError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"state_dict entry {name!r} has shape {tuple(tensor.shape)}, the module needs "
                f"{tuple(expected[name].shape)}"
            )


def _optional_float(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


def _metrics(fields: Mapping[str, object]) -> SeedMetrics:
    since = fields["epochs_since_measurement"]
    return SeedMetrics(
        contribution=_optional_float(fields["contribution"]),
        contribution_at_full_alpha=_optional_float(fields["contribution_at_full_alpha"]),
        contribution_velocity=float(cast(float, fields["contribution_velocity"])),
        epochs_since_measurement=None if since is None else int(cast(int, since)),
        gradient_norm=_optional_float(fields["gradient_norm"]),
        gradient_health=_optional_float(fields["gradient_health"]),
        accuracy_at_stage_entry=_optional_float(fields["accuracy_at_stage_entry"]),
        accuracy_at_germination=_optional_float(fields["accuracy_at_germination"]),
    )


def _summary(fields: Mapping[str, object] | None) -> GradientSummary | None:
    if fields is None:
        return None
    return GradientSummary(
        norm=float(cast(float, fields["norm"])),
        peak=float(cast(float, fields["peak"])),
        health=float(cast(float, fields["health"])),
        exploding=bool(fields["exploding"]),
    )


def seed_from_record(
    record: Mapping[str, object], topology: Topology, channels: int, device: torch.device, dtype: torch.dtype
) -> Seed:
    """Rebuild a seed exactly as captured (weights, counters, flags), on ``device``/``dtype``."""
    try:
        blueprint = Blueprint(cast(int, record["blueprint"]))
        seed = Seed(
            BLUEPRINTS.empty(topology, blueprint, channels),
            BlendGate.create(channels, topology),
            blueprint=blueprint,
            style=BlendStyle(cast(int, record["style"])),
            tempo=Tempo(cast(int, record["tempo"])),
            blend_target=float(cast(float, record["blend_target"])),
            serial=int(cast(int, record["serial"])),
        )
        seed.load_state_dict(cast(Mapping[str, Tensor], record["state"]))
        seed.to(device=device, dtype=dtype)
        seed.alpha = AlphaController.from_state(cast(dict[str, float | int], record["alpha"]))
        seed.age = int(cast(int, record["age"]))
        seed.epochs_in_stage = int(cast(int, record["epochs_in_stage"]))
        seed.gate_blocked_epochs = int(cast(int, record["gate_blocked_epochs"]))
        seed.metrics = _metrics(cast(Mapping[str, object], record["metrics"]))
        seed.contribution_in_stage = bool(record["contribution_in_stage"])
        age = record["contribution_age"]
        seed.contribution_age = None if age is None else int(cast(int, age))
        seed.gradients = GradientMonitor(_summary(cast(Mapping[str, object] | None, record["gradients"])))
        seed.prune_pending = bool(record["prune_pending"])
        saved = cast(list[bool] | None, record["saved_requires_grad"])
        seed.saved_requires_grad = None if saved is None else tuple(bool(flag) for flag in saved)
        for parameter, flag in zip(seed.parameters(), cast(list[bool], record["requires_grad"]), strict=True):
            parameter.requires_grad_(bool(flag))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"unreadable seed record: {error}") from error
    return seed


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """The governor's rollback point: a full ``capture_lifecycle`` state (host, every seed in every stage with
    its counters and metrics, the germination generator), so restoring it gives back exactly the model that was
    validated when it was taken. ``fossils`` counts its fossilized seeds."""

    state: Record
    fossils: int


def capture_lifecycle(
    host: nn.Module, slots: Sequence[SeedSlot], topology: Topology, generator: torch.Generator, next_serial: int
) -> Record:
    return {
        "format": CHECKPOINT_FORMAT,
        "topology": topology.value,
        "slot_ids": [str(slot.slot_id) for slot in slots],
        "host": cloned_state(host.state_dict()),
        "generator": generator.get_state(),
        "next_serial": next_serial,
        "slots": [
            {
                "slot_id": str(slot.slot_id),
                "stage": int(slot.stage),
                "dwell_remaining": slot.dwell_remaining,
                "seed": None if slot.seed is None else seed_record(slot.seed),
            }
            for slot in slots
        ],
    }


def restore_lifecycle(
    state: Mapping[str, object],
    host: nn.Module,
    slots: Sequence[SeedSlot],
    topology: Topology,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> int:
    """Load a ``capture_lifecycle`` state into a model built the same way; returns the next seed serial."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not a kasmina lifecycle checkpoint: format {state.get('format')!r}")
    if state.get("topology") != topology.value:
        raise CheckpointError(f"checkpoint topology {state.get('topology')!r}, model topology {topology.value!r}")
    expected = [str(slot.slot_id) for slot in slots]
    if state.get("slot_ids") != expected:
        raise CheckpointError(f"checkpoint slots {state.get('slot_ids')!r} do not match the model's {expected}")
    try:
        records = cast(list[Mapping[str, object]], state["slots"])
        rebuilt = []
        for slot, record in zip(slots, records, strict=True):
            stage = SeedStage(cast(int, record["stage"]))
            seed_fields = cast(Mapping[str, object] | None, record["seed"])
            if (stage in SEED_BEARING_STAGES) != (seed_fields is not None):
                raise ValueError(f"slot {slot.slot_id}: stage {stage.name} and seed presence disagree")
            seed = (
                None if seed_fields is None else seed_from_record(seed_fields, topology, slot.channels, device, dtype)
            )
            rebuilt.append((slot, stage, int(cast(int, record["dwell_remaining"])), seed))
        next_serial = int(cast(int, state["next_serial"]))
        host_state = cast(Mapping[str, Tensor], state["host"])
        check_state_fits(host, host_state)
        generator_state = cast(Tensor, state["generator"])
        torch.Generator().set_state(generator_state)  # a scratch generator: refuses a bad state before any write
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"unreadable lifecycle checkpoint: {error}") from error
    # Everything above only read and built; from here on nothing can be refused.
    host.load_state_dict(host_state)
    generator.set_state(generator_state)
    for slot, stage, dwell, seed in rebuilt:
        slot.restore_state(stage, dwell, seed)
    return next_serial
