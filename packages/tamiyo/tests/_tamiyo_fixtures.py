"""Shared builders and hypothesis strategies for tamiyo's tests: typed observations, valid slot reports."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from hypothesis import strategies as st

from esper.leyline import (
    FAILURE_STAGES,
    HISTORY_LENGTH,
    SEED_BEARING_STAGES,
    TOPOLOGY_BLUEPRINTS,
    AlphaCurve,
    AlphaMode,
    AlphaSnapshot,
    BlendStyle,
    Blueprint,
    EnvObservation,
    LastAction,
    LifecycleOp,
    SeedMetrics,
    SeedReport,
    SeedStage,
    SlotConfig,
    SlotId,
    SlotReport,
    Tempo,
    Topology,
)
from esper.tamiyo import LSTMPolicyBundle

SLOTS = SlotConfig.after_blocks(3)
ONE_SLOT = SlotConfig.after_blocks(1)
HELD_FULL = AlphaSnapshot(1.0, 1.0, AlphaMode.HOLD, 5, 5)


def seed(
    *,
    blueprint: Blueprint = Blueprint.CONV_LIGHT,
    style: BlendStyle = BlendStyle.SIGMOID_ADD,
    tempo: Tempo = Tempo.STANDARD,
    alpha: AlphaSnapshot | None = None,
    metrics: SeedMetrics | None = None,
    age: int = 10,
    epochs_in_stage: int = 3,
    param_count: int = 100,
    gate_blocked_epochs: int = 0,
) -> SeedReport:
    return SeedReport(
        blueprint=blueprint,
        style=style,
        tempo=tempo,
        alpha=alpha if alpha is not None else AlphaSnapshot(),
        metrics=metrics if metrics is not None else SeedMetrics(),
        age_epochs=age,
        epochs_in_stage=epochs_in_stage,
        param_count=param_count,
        gate_blocked_epochs=gate_blocked_epochs,
    )


def slot(
    index: int, stage: SeedStage = SeedStage.DORMANT, report: SeedReport | None = None, dwell: int = 0
) -> SlotReport:
    """Slot ``r0c{index}``; a seed-bearing stage without an explicit report gets a default seed."""
    if stage in SEED_BEARING_STAGES and report is None:
        report = seed()
    return SlotReport(SlotId(0, index), stage, report, dwell)


def empty_slots(config: SlotConfig = SLOTS) -> tuple[SlotReport, ...]:
    return tuple(SlotReport.empty(slot_id) for slot_id in config.slot_ids)


def observation(
    slots: Sequence[SlotReport] | None = None,
    *,
    epoch: int = 10,
    max_epochs: int = 60,
    val_loss: float = 1.0,
    val_accuracy: float = 50.0,
    loss_history: tuple[float, ...] = (),
    accuracy_history: tuple[float, ...] = (),
    germinations_remaining: int = 3,
    last_action: LastAction | None = None,
    host_param_count: int = 1000,
) -> EnvObservation:
    return EnvObservation(
        epoch=epoch,
        max_epochs=max_epochs,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        slots=tuple(slots) if slots is not None else empty_slots(),
        loss_history=loss_history,
        accuracy_history=accuracy_history,
        germinations_remaining=germinations_remaining,
        last_action=last_action,
        host_param_count=host_param_count,
    )


# --- hypothesis strategies --------------------------------------------------------------------------------------

_anything = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_reasonable = st.floats(min_value=-50.0, max_value=50.0)


@st.composite
def alpha_snapshots(draw: st.DrawFn) -> AlphaSnapshot:
    total = draw(st.integers(0, 8))
    return AlphaSnapshot(
        value=draw(st.floats(0.0, 1.0)),
        target=draw(st.floats(0.0, 1.0)),
        mode=draw(st.sampled_from(AlphaMode)),
        steps_total=total,
        steps_done=draw(st.integers(0, total)),
        curve=draw(st.sampled_from(AlphaCurve)),
    )


@st.composite
def seed_metrics(draw: st.DrawFn) -> SeedMetrics:
    return SeedMetrics(
        contribution=draw(_anything),
        contribution_at_full_alpha=draw(_anything),
        contribution_velocity=draw(st.one_of(_reasonable, st.just(float("nan")))),
        epochs_since_measurement=draw(st.one_of(st.none(), st.integers(0, 100))),
        gradient_norm=draw(_anything),
        gradient_health=draw(st.one_of(st.none(), st.floats(0.0, 1.0), st.just(float("nan")))),
        accuracy_at_stage_entry=draw(_anything),
        accuracy_at_germination=draw(_anything),
    )


@st.composite
def seed_reports(draw: st.DrawFn, topology: Topology = Topology.CNN) -> SeedReport:
    age = draw(st.integers(0, 80))
    return SeedReport(
        blueprint=draw(st.sampled_from(TOPOLOGY_BLUEPRINTS[topology][1:])),
        style=draw(st.sampled_from(BlendStyle)),
        tempo=draw(st.sampled_from(Tempo)),
        alpha=draw(alpha_snapshots()),
        metrics=draw(seed_metrics()),
        age_epochs=age,
        epochs_in_stage=draw(st.integers(0, age)),
        param_count=draw(st.integers(0, 10**7)),
        gate_blocked_epochs=draw(st.integers(0, 80)),
    )


@st.composite
def slot_reports(draw: st.DrawFn, slot_id: SlotId) -> SlotReport:
    stage = draw(st.sampled_from(SeedStage))
    report = draw(seed_reports()) if stage in SEED_BEARING_STAGES else None
    dwell = draw(st.integers(0, 5)) if stage in FAILURE_STAGES else 0
    return SlotReport(slot_id, stage, report, dwell)


@st.composite
def observations(draw: st.DrawFn, config: SlotConfig = SLOTS) -> EnvObservation:
    max_epochs = draw(st.integers(1, 150))
    last = draw(
        st.one_of(
            st.none(),
            st.builds(LastAction, st.sampled_from(LifecycleOp), st.integers(0, config.num_slots - 1), st.booleans()),
        )
    )
    history = st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=HISTORY_LENGTH).map(tuple)
    return EnvObservation(
        epoch=draw(st.integers(0, max_epochs)),
        max_epochs=max_epochs,
        val_loss=draw(st.floats(allow_nan=True, allow_infinity=True)),
        val_accuracy=draw(st.floats(allow_nan=True, allow_infinity=True)),
        slots=tuple(draw(slot_reports(slot_id)) for slot_id in config.slot_ids),
        loss_history=draw(history),
        accuracy_history=draw(history),
        germinations_remaining=draw(st.integers(0, 4)),
        last_action=last,
        host_param_count=draw(st.integers(0, 10**6)),
    )


def varied_observations(epoch: int = 10) -> list[EnvObservation]:
    """Four envs in different situations, between them allowing every op."""
    blending = seed(alpha=AlphaSnapshot(0.7, 0.7), age=12)
    return [
        observation(epoch=epoch),
        observation([slot(0, SeedStage.TRAINING), slot(1), slot(2, SeedStage.EMBARGOED, dwell=2)], epoch=epoch),
        observation([slot(0, SeedStage.BLENDING, blending), slot(1, SeedStage.HOLDING), slot(2)], epoch=epoch),
        observation(
            [slot(0, SeedStage.FOSSILIZED), slot(1, SeedStage.HOLDING, seed(alpha=HELD_FULL)), slot(2)],
            epoch=epoch,
            germinations_remaining=0,
            last_action=LastAction(LifecycleOp.GERMINATE, 2, True),
        ),
    ]


def perturbed_bundle(config: SlotConfig = SLOTS, *, seed_value: int = 2, **sizes: int) -> LSTMPolicyBundle:
    """A bundle whose weights and normalizer look trained (non-uniform policy), so comparisons mean something.
    The default seed is one whose random policy chooses several ops on ``varied_observations`` (the draws depend
    on the feature width, so a layout change can call for another)."""
    torch.manual_seed(seed_value)
    bundle = LSTMPolicyBundle.build(kind="lstm", slot_config=config, topology=Topology.CNN, sizes=sizes)
    with torch.no_grad():
        for parameter in bundle.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    observations_for_stats = [o for epoch in (3, 20, 40) for o in varied_observations(epoch)]
    if config == SLOTS:
        bundle.update_normalizer(bundle.encode(observations_for_stats).inputs)
    return bundle
