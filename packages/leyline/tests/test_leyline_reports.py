"""Reports are validated values: inconsistent slot reports and observations are refused."""

from __future__ import annotations

import pytest

from esper.leyline import (
    AlphaMode,
    AlphaSnapshot,
    BlendStyle,
    Blueprint,
    ConfigError,
    EnvObservation,
    SeedMetrics,
    SeedReport,
    SeedStage,
    SlotId,
    SlotReport,
    Tempo,
)


def _seed() -> SeedReport:
    return SeedReport(
        blueprint=Blueprint.CONV_LIGHT,
        style=BlendStyle.LINEAR_ADD,
        tempo=Tempo.FAST,
        alpha=AlphaSnapshot(0.4, 1.0, AlphaMode.UP, 5, 2),
        metrics=SeedMetrics(contribution=1.5),
        age_epochs=7,
        epochs_in_stage=2,
        param_count=152,
    )


def test_slot_report_consistency() -> None:
    slot = SlotId(0, 0)
    assert SlotReport.empty(slot).seed is None
    assert SlotReport(slot, SeedStage.BLENDING, _seed()).seed is not None
    with pytest.raises(ConfigError, match="needs a seed report"):
        SlotReport(slot, SeedStage.TRAINING)
    with pytest.raises(ConfigError, match="cannot have a seed report"):
        SlotReport(slot, SeedStage.EMBARGOED, _seed(), dwell_remaining=3)
    with pytest.raises(ConfigError, match="failure stages"):
        SlotReport(slot, SeedStage.DORMANT, dwell_remaining=2)
    assert SlotReport(slot, SeedStage.EMBARGOED, dwell_remaining=3).dwell_remaining == 3


def test_alpha_snapshot_validation() -> None:
    assert AlphaSnapshot(0.4, 1.0, AlphaMode.UP, 5, 2).ramping
    assert not AlphaSnapshot().ramping
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        AlphaSnapshot(1.5, 1.0)
    with pytest.raises(ConfigError, match="steps_done"):
        AlphaSnapshot(0.0, 1.0, AlphaMode.UP, 2, 3)


def test_seed_report_validation() -> None:
    with pytest.raises(ConfigError, match="NOOP"):
        SeedReport(Blueprint.NOOP, BlendStyle.LINEAR_ADD, Tempo.FAST, AlphaSnapshot(), SeedMetrics(), 0, 0, 0)
    with pytest.raises(ConfigError, match=">= 0"):
        SeedReport(Blueprint.NORM, BlendStyle.LINEAR_ADD, Tempo.FAST, AlphaSnapshot(), SeedMetrics(), -1, 0, 0)


def test_observation_validation() -> None:
    slots = (SlotReport.empty(SlotId(0, 0)),)
    obs = EnvObservation(epoch=3, max_epochs=60, val_loss=2.0, val_accuracy=30.0, slots=slots)
    assert obs.last_action is None
    with pytest.raises(ConfigError, match="max_epochs"):
        EnvObservation(epoch=61, max_epochs=60, val_loss=2.0, val_accuracy=30.0, slots=slots)
    with pytest.raises(ConfigError, match="at least one slot"):
        EnvObservation(epoch=1, max_epochs=60, val_loss=2.0, val_accuracy=30.0, slots=())
    with pytest.raises(ConfigError, match="at most 5"):
        EnvObservation(1, 60, 2.0, 30.0, slots, loss_history=(1.0,) * 6)
    with pytest.raises(ConfigError, match="germinations_remaining"):
        EnvObservation(1, 60, 2.0, 30.0, slots, germinations_remaining=-1)
