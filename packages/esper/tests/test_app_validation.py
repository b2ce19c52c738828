"""The PPO run's periodic validation: when it is due, and the best checkpoint that remembers its score."""

from __future__ import annotations

from pathlib import Path

import pytest
from _esper_fixtures import policy_run_dir

from esper.app.run_config import RunSettings, resolve
from esper.app.run_directory import best_checkpoint_file, checkpoint_file
from esper.app.validation import VALIDATION_KEY, ValidationResult, best_score, save_best, validation_due
from esper.leyline import CheckpointError, ConfigError, SlotConfig
from esper.simic.checkpoints import load_checkpoint


def test_validation_is_due_every_k_rounds_and_after_the_last() -> None:
    assert [r for r in range(12) if validation_due(r, 5, 12)] == [4, 9, 11]
    assert [r for r in range(3) if validation_due(r, 1, 3)] == [0, 1, 2]
    assert [r for r in range(4) if validation_due(r, 10, 4)] == [3]


def test_validation_settings_are_run_settings_with_defaults() -> None:
    config = resolve("digits", {"run": {"validate_every": 3, "validation_episodes": 4}}, {})
    assert (config.run.validate_every, config.run.validation_episodes) == (3, 4)
    assert (RunSettings().validate_every, RunSettings().validation_episodes) == (5, 8)
    assert config.to_dict()["run"]["validate_every"] == 3
    for key in ("validate_every", "validation_episodes"):
        with pytest.raises(ConfigError, match=rf"run\.{key} must be >= 1"):
            resolve("digits", {"run": {key: 0}}, {})


def test_the_best_checkpoint_records_its_round_and_score(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "run", SlotConfig.after_blocks(3))
    path = best_checkpoint_file(run)
    path.unlink()
    assert best_score(path) is None
    result = ValidationResult(round_index=4, val_accuracies=(40.0, 50.0), params_added=(10, 30), seconds=1.0)
    assert result.mean_val_accuracy == 45.0 and result.mean_params_added == 20.0
    save_best(path, load_checkpoint(checkpoint_file(run)), result)
    assert best_score(path) == 45.0
    saved = load_checkpoint(path)
    assert saved.config[VALIDATION_KEY] == {"round": 4, "mean_val_accuracy": 45.0}
    assert saved.config["task"] == "digits"  # still a checkpoint --controller can read


def test_a_best_checkpoint_without_its_score_is_refused(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "run", SlotConfig.after_blocks(3))
    with pytest.raises(CheckpointError, match="does not record the validation score"):
        best_score(best_checkpoint_file(run))
