"""The resolved run config: task defaults, then a TOML file, then flags; every unknown or mistyped key is an error
that names it; ``to_dict``/``from_dict`` round-trips through JSON (what ``--resume`` reads back)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from esper.app.run_config import RunSettings, from_dict, read_toml, resolve
from esper.app.tasks import get_task
from esper.kasmina import GateConfig
from esper.leyline import DIGITS_EPISODE_EPOCHS, MIN_FOSSILIZE_CONTRIBUTION, ConfigError
from esper.simic.envs.rewards import RewardConfig
from esper.simic.ppo.updater import PPOConfig
from esper.tamiyo import COMPILE_MODES


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_come_from_the_task_preset() -> None:
    config = resolve("digits", {}, {})
    preset = get_task("digits")
    assert config.task == "digits"
    assert config.run == RunSettings(epochs=DIGITS_EPISODE_EPOCHS)
    assert config.episode_epochs == DIGITS_EPISODE_EPOCHS == config.env.max_epochs
    assert config.env.batch_size == preset.env.batch_size and config.env.host_lr == preset.env.host_lr
    assert config.env.reward == RewardConfig()
    assert config.ppo == PPOConfig()
    assert config.policy.kind == "lstm" and config.policy.sizes == {}
    assert config.preset is preset


def test_file_overrides_defaults_and_flags_override_the_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[run]
rounds = 3
envs = 4
epochs = 7
seed = 9
[env]
batch_size = 32
lr_schedule = "constant"
[reward]
rent_weight = 0.5
[ppo]
learning_rate = 1
target_kl = "none"
lr_schedule = "linear"
[policy]
hidden_dim = 16
lstm_residual = false
""",
    )
    config = resolve("digits", read_toml(path), {"rounds": 5, "seed": None, "device": "cpu"})
    assert config.run.rounds == 5  # flag beats file
    assert config.run.seed == 9  # a flag left unset (None) does not override
    assert config.run.envs == 4 and config.run.epochs == 7
    assert config.env.max_epochs == 7  # the episode length follows run.epochs
    assert config.env.batch_size == 32 and config.env.lr_schedule == "constant"
    assert config.env.reward.rent_weight == 0.5
    assert config.ppo.learning_rate == 1.0 and isinstance(config.ppo.learning_rate, float)  # int widened
    assert config.ppo.target_kl is None
    assert config.ppo.lr_schedule == "linear"
    assert config.policy.sizes == {"hidden_dim": 16, "lstm_residual": False}
    assert config.env.host_lr == get_task("digits").env.host_lr  # untouched keys keep the task's value


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[run]\nround = 3\n", "run.round"),
        ("[env]\nbatch = 3\n", "env.batch"),
        ("[env]\nmax_epochs = 3\n", "env.max_epochs"),  # the episode length is run.epochs
        ("[reward]\nrent = 0.1\n", "reward.rent"),
        ("[ppo]\nlearning_rat = 0.1\n", "ppo.learning_rat"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown config key '{re.escape(named)}'") as error:
        resolve("digits", read_toml(write_toml(tmp_path, text)), {})
    assert "known keys" in str(error.value)


def test_unknown_section_is_an_error_listing_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config section \[trainer\].*known sections: run, env"):
        read_toml(write_toml(tmp_path, "[trainer]\nrounds = 1\n"))
    with pytest.raises(ConfigError, match=r"\[run\] .* must be a table"):
        read_toml(write_toml(tmp_path, "run = 3\n"))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_toml(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(write_toml(tmp_path, "[run\nrounds = 1\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[run]\nrounds = "3"\n', r"'run.rounds' must be int, got str '3'"),
        ("[run]\nrounds = 2.5\n", r"'run.rounds' must be int, got float 2.5"),
        ("[run]\nrounds = true\n", r"'run.rounds' must be int, got bool True"),
        ('[env]\nhost_lr = "fast"\n', r"'env.host_lr' must be float"),
        ("[ppo]\nnormalize_advantages = 1\n", r"'ppo.normalize_advantages' must be bool, got int 1"),
        ('[run]\nrounds = "none"\n', r"'run.rounds' must be int, got str 'none'"),
        ("[policy]\nhidden_dim = 1.5\n", r"policy size 'hidden_dim' must be an integer"),
        ("[policy]\nkind = 3\n", r"policy.kind must be a string"),
    ],
)
def test_wrong_types_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve("digits", read_toml(write_toml(tmp_path, text)), {})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"rounds": 0}, "run.rounds must be >= 1, got 0"),
        ({"epochs": 0}, "run.epochs must be >= 1"),
        ({"backend": "gpu-farm"}, "run.backend must be one of"),
        ({"compile_mode": "fastest"}, "compile mode must be one of"),
        ({"threads": 0}, "run.threads must be >= 1, got 0"),
        ({"workers": 0}, "run.workers must be >= 1, got 0"),
    ],
)
def test_out_of_range_values_are_errors(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve("digits", {}, flags)


def test_the_run_accepts_exactly_the_compile_modes_a_policy_accepts() -> None:
    for mode in COMPILE_MODES:
        assert resolve("digits", {}, {"compile_mode": mode}).run.compile_mode == mode
    with pytest.raises(ConfigError, match=", ".join(COMPILE_MODES)):
        RunSettings(compile_mode="fastest")


def test_values_are_validated_by_their_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ppo\.clip_ratio must be > 0"):
        resolve("digits", read_toml(write_toml(tmp_path, "[ppo]\nclip_ratio = 0\n")), {})
    with pytest.raises(ConfigError, match=r"env\.lr_schedule"):
        resolve("digits", read_toml(write_toml(tmp_path, '[env]\nlr_schedule = "step"\n')), {})
    with pytest.raises(ConfigError, match=r"env\.counterfactual_batching must be one of auto, fused, separate"):
        resolve("digits", read_toml(write_toml(tmp_path, '[env]\ncounterfactual_batching = "k"\n')), {})
    separate = '[env]\ncounterfactual_batching = "separate"\n[run]\nthreads = 2\n'
    config = resolve("digits", read_toml(write_toml(tmp_path, separate)), {})
    assert config.env.counterfactual_batching == "separate" and config.run.threads == 2


def test_unknown_task_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown task 'imagenet'"):
        resolve("imagenet", {}, {})


def test_to_dict_from_dict_round_trip_through_json(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[run]\nepochs = 5\nworkers = 2\n[ppo]\ntarget_kl = "none"\nclip_ratio = 1\n'
        "[policy]\nhidden_dim = 16\nlstm_residual = true\ntrunk_dim = 16\n[reward]\nrollback_penalty = 2\n",
    )
    config = resolve("digits-strong", read_toml(path), {"seed": 4, "rounds": 6, "backend": "inprocess"})
    data = json.loads(json.dumps(config.to_dict()))
    assert data["task"] == "digits-strong"
    assert data["run"]["seed"] == 4 and data["env"]["max_epochs"] == 5
    assert data["policy"] == {"kind": "lstm", "hidden_dim": 16, "lstm_residual": True, "trunk_dim": 16}
    assert "reward" not in data["env"] and data["reward"]["rollback_penalty"] == 2.0
    rebuilt = from_dict(data)
    assert rebuilt == config
    assert rebuilt.to_dict() == config.to_dict()


def test_from_dict_refuses_an_incomplete_config() -> None:
    data = resolve("digits", {}, {}).to_dict()
    del data["ppo"]
    with pytest.raises(ConfigError, match="run config is incomplete: missing 'ppo'"):
        from_dict(data)


def test_from_dict_checks_values_like_a_file() -> None:
    data = json.loads(json.dumps(resolve("digits", {}, {}).to_dict()))
    data["run"]["rounds"] = None
    with pytest.raises(ConfigError, match=r"'run\.rounds' cannot be none"):
        from_dict(data)
    data["run"]["rounds"] = 2
    data["ppo"]["entropy"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown config key 'ppo\.entropy'"):
        from_dict(data)


def test_gate_thresholds_come_from_the_task_and_a_gates_section(tmp_path: Path) -> None:
    default = resolve("digits", {}, {})
    assert default.gates == get_task("digits").gates
    assert default.gate_config == GateConfig.for_horizon(DIGITS_EPISODE_EPOCHS)
    path = write_toml(tmp_path, "[gates]\nmin_training_epochs = 2\nmin_gradient_health = 0.5\n")
    config = resolve("digits", read_toml(path), {})
    assert config.gate_config == GateConfig(2, 0.5, MIN_FOSSILIZE_CONTRIBUTION)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["gates"] == {"min_training_epochs": 2, "min_gradient_health": 0.5, "min_fossilize_contribution": 0.5}
    assert from_dict(data).gate_config == config.gate_config  # what --resume reads back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gates]\nmin_health = 0.5\n", r"unknown config key 'gates\.min_health'; known keys in \[gates\]"),
        ('[gates]\nmin_training_epochs = "four"\n', r"'gates\.min_training_epochs' must be int or NoneType"),
        ("[gates]\nmin_gradient_health = true\n", r"'gates\.min_gradient_health' must be float"),
        ("[gates]\nmin_gradient_health = 1.5\n", r"min_gradient_health must be in \[0, 1\]"),
        ("[gates]\nmin_fossilize_contribution = 0\n", r"min_fossilize_contribution must be > 0"),
    ],
)
def test_bad_gate_settings_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve("digits", read_toml(write_toml(tmp_path, text)), {})
