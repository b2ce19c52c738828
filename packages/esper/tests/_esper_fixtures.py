"""Shared helpers of the app's tests: episode summaries with chosen numbers, and a PPO run directory holding a
real (untrained) LSTM policy checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.app.run_directory import best_checkpoint_file, checkpoint_file
from esper.leyline import SlotConfig
from esper.simic.checkpoints import TrainingCheckpoint, capture_rng_states, save_checkpoint
from esper.simic.envs.episode_records import EpisodeSummary
from esper.tamiyo import create_policy, register_builtin_policies


def episode(
    seed: int,
    test_accuracy: float,
    params_added: int = 0,
    *,
    val_accuracy: float | None = None,
    germinated: int = 0,
    fossilized: int = 0,
    pruned: int = 0,
    rolled_back: bool = False,
    total_reward: float = 0.0,
) -> EpisodeSummary:
    """An episode summary; the final validation accuracy defaults to 5 points above the test accuracy, so a test
    can tell which of the two a report shows."""
    val = test_accuracy + 5.0 if val_accuracy is None else val_accuracy
    return EpisodeSummary(
        seed=seed,
        epochs_run=3,
        test_accuracy=test_accuracy,
        initial_val_accuracy=10.0,
        final_val_accuracy=val,
        best_val_accuracy=val,
        host_params=77,
        params_added=params_added,
        germinated=germinated,
        fossilized=fossilized,
        pruned=pruned,
        invalid_actions=0,
        rolled_back=rolled_back,
        rollback_reason="diverged" if rolled_back else None,
        total_reward=total_reward,
        val_accuracy_curve=(10.0, val),
        op_counts={"WAIT": 3},
        events=(),
        seeds_at_end=(),
    )


def policy_run_dir(path: Path, slots: SlotConfig, hidden_dim: int = 16) -> Path:
    """A directory laid out like a PPO run, whose checkpoints (latest and best, the same) hold an untrained LSTM
    policy for ``slots``."""
    register_builtin_policies()
    bundle = create_policy("lstm", slots, hidden_dim=hidden_dim)
    config: dict[str, Any] = {"task": "digits"}
    checkpoint = TrainingCheckpoint(
        rounds_completed=1,
        policy_state=bundle.state_dict(),
        policy_build_config=bundle.build_config(),
        updater_state={},
        rng=capture_rng_states(),
        config=config,
    )
    save_checkpoint(checkpoint_file(path), checkpoint)
    save_checkpoint(best_checkpoint_file(path), checkpoint)
    return path
