"""Resume continues exactly: 2 rounds + a resumed 2 rounds == an uninterrupted 4-round run (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _simic_fixtures import TinyBundle, stripes_factory, stripes_task

from esper.leyline import CheckpointError, SlotConfig
from esper.simic.checkpoints import load_checkpoint
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.pools import InProcessPool
from esper.simic.ppo.updater import PPOConfig
from esper.simic.training import PPORunConfig, PPOTraining

ENV = EnvConfig(max_epochs=4, batch_size=64, host_lr=0.05, seed_lr=0.05)


def _training(rounds: int, checkpoint: Path | None) -> PPOTraining:
    bundle = TinyBundle(SlotConfig.after_blocks(2), seed=0)
    pool = InProcessPool(2, stripes_task(), stripes_factory(), ENV)
    run = PPORunConfig(rounds=rounds, n_envs=2, episode_epochs=4, seed=7, ppo=PPOConfig(minibatch_envs=1))
    return PPOTraining(bundle, pool, run, checkpoint_path=checkpoint, run_config={"note": "test"})


def _weights(training: PPOTraining) -> list[torch.Tensor]:
    return [p.detach().clone() for p in training.bundle.parameters()]


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    straight = _training(4, None)
    straight_reports = straight.run()

    checkpoint = tmp_path / "latest.pt"
    first = _training(4, checkpoint)
    first_reports = first.run(stop_after=2)  # the run is interrupted after two rounds
    assert load_checkpoint(checkpoint).rounds_completed == 2

    resumed = _training(4, checkpoint)
    resumed.resume(load_checkpoint(checkpoint))
    resumed_reports = resumed.run()

    assert [r.round_index for r in first_reports + resumed_reports] == [0, 1, 2, 3]
    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert [r.mean_final_val_accuracy for r in straight_reports] == [
        r.mean_final_val_accuracy for r in first_reports + resumed_reports
    ]
    assert load_checkpoint(checkpoint).rounds_completed == 4


def test_corrupt_and_missing_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": 1}, foreign)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(foreign)
    truncated = tmp_path / "truncated.pt"
    training = _training(1, tmp_path / "good.pt")
    training.run()
    truncated.write_bytes((tmp_path / "good.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(truncated)


def test_time_budget_stops_at_a_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "latest.pt"
    training = _training(4, checkpoint)
    reports = training.run(time_budget_seconds=0.0)  # the first round always runs; no second one fits
    assert [r.round_index for r in reports] == [0]
    assert load_checkpoint(checkpoint).rounds_completed == 1
    resumed = _training(4, checkpoint)
    resumed.resume(load_checkpoint(checkpoint))
    assert [r.round_index for r in resumed.run(time_budget_seconds=3600.0)] == [1, 2, 3]
