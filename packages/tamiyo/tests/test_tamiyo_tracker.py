"""Signal tracker: plateau counting, the stabilization latch, peek/update agreement, complete reset, epsilon."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import ConfigError
from esper.tamiyo import SignalTracker, TrackerConfig, TrackerSignals


def _feed(tracker: SignalTracker, epochs: list[tuple[float, float]]) -> TrackerSignals:
    signals = tracker.signals
    for loss, accuracy in epochs:
        signals = tracker.update(loss, accuracy)
    return signals


def test_plateau_counts_consecutive_small_gains() -> None:
    tracker = SignalTracker()
    signals = _feed(tracker, [(1.0, 50.0), (1.0, 50.3), (1.0, 50.4), (1.0, 49.0)])
    assert signals.plateau_epochs == 3 and signals.accuracy_gain == pytest.approx(-1.4)
    assert tracker.update(1.0, 51.0).plateau_epochs == 0  # a real gain resets the count


def test_stabilization_latches_after_three_stable_epochs() -> None:
    tracker = SignalTracker()
    signals = _feed(tracker, [(2.0, 10.0), (1.0, 20.0), (0.98, 21.0), (0.97, 21.0)])
    assert signals.stable_epochs == 2 and not signals.stabilized  # -50 % was not stable
    signals = tracker.update(0.975, 21.0)
    assert signals.stable_epochs == 3 and signals.stabilized
    signals = tracker.update(3.0, 5.0)  # a divergence breaks the streak, not the latch
    assert signals.stable_epochs == 0 and signals.stabilized


def test_the_stable_band_is_open() -> None:
    tracker = SignalTracker(TrackerConfig(stable_band=(-0.05, 0.03), stable_epochs=1))
    tracker.update(1.0, 0.0)
    assert not tracker.peek(1.03, 0.0).stabilized and not tracker.peek(0.95, 0.0).stabilized
    assert tracker.peek(1.029, 0.0).stabilized and tracker.peek(0.951, 0.0).stabilized


def test_relative_change_uses_epsilon_for_a_zero_loss() -> None:
    tracker = SignalTracker(TrackerConfig(loss_epsilon=1e-8))
    tracker.update(0.0, 90.0)
    signals = tracker.update(1e-9, 90.0)
    assert signals.relative_loss_change is not None and math.isfinite(signals.relative_loss_change)
    assert signals.relative_loss_change == pytest.approx(0.1)


def test_non_finite_epochs_break_streaks_and_keep_the_reference() -> None:
    tracker = SignalTracker()
    _feed(tracker, [(1.0, 50.0), (1.0, 50.1), (1.0, 50.2)])
    signals = tracker.update(math.nan, 50.0)
    assert signals.plateau_epochs == 0 and signals.stable_epochs == 0
    assert signals.last_loss == 1.0 and signals.epochs_seen == 4 and signals.loss_history == (1.0, 1.0, 1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)), max_size=12))
def test_peek_and_update_agree(epochs: list[tuple[float, float]]) -> None:
    tracker = SignalTracker()
    for loss, accuracy in epochs:
        before = tracker.signals
        peeked = tracker.peek(loss, accuracy)
        assert tracker.signals == before  # peek stores nothing
        assert tracker.update(loss, accuracy) == peeked
    assert len(tracker.signals.loss_history) <= tracker.config.history_length


def test_reset_forgets_everything_including_the_latch() -> None:
    tracker = SignalTracker(TrackerConfig(stable_epochs=1))
    _feed(tracker, [(1.0, 50.0), (1.0, 50.0)])
    assert tracker.signals.stabilized
    tracker.reset()
    assert tracker.signals == TrackerSignals() == SignalTracker().signals


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="stable_band"):
        TrackerConfig(stable_band=(0.01, 0.03))
    with pytest.raises(ConfigError, match="loss_epsilon"):
        TrackerConfig(loss_epsilon=0.0)
