"""Config values a long run must survive: every accepted value round-trips through its own ``config.json``,
non-finite numbers are refused where they make no sense, and bad devices, seeds and config files are one
``ConfigError`` each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from esper.app.run_config import MAX_SEED, check_device, from_dict, read_toml, resolve
from esper.leyline import ConfigError


def _round_trip(text: str, tmp_path: Path) -> tuple[dict[str, object], dict[str, object]]:
    path = tmp_path / "run.toml"
    path.write_text(text)
    config = resolve("digits", read_toml(path), {})
    stored = json.dumps(config.to_dict(), allow_nan=False)  # what config.json holds: strict JSON
    return config.to_dict(), from_dict(json.loads(stored)).to_dict()


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("[ppo]\nmax_grad_norm = inf\n", "ppo", "max_grad_norm"),
        ("[ppo]\ntarget_kl = inf\n", "ppo", "target_kl"),
        ("[env]\ngrad_clip = inf\n", "env", "grad_clip"),
        ('[ppo]\nmax_grad_norm = "inf"\n', "ppo", "max_grad_norm"),
    ],
)
def test_meaningful_infinities_survive_config_json(text: str, section: str, key: str, tmp_path: Path) -> None:
    original, restored = _round_trip(text, tmp_path)
    assert original == restored
    path = tmp_path / "run.toml"
    config = resolve("digits", read_toml(path), {})
    assert getattr(config.ppo if section == "ppo" else config.env, key) == math.inf


@pytest.mark.parametrize(
    "text",
    [
        "[ppo]\nlearning_rate = inf\n",
        "[ppo]\nlearning_rate = nan\n",
        "[ppo]\nclip_ratio = inf\n",
        "[ppo]\nvalue_coef = inf\n",
        "[ppo]\nentropy_coef = nan\n",
        "[ppo]\nmax_grad_norm = nan\n",
        "[ppo]\ntarget_kl = nan\n",
        "[env]\nweight_decay = inf\n",
        "[env]\nweight_decay = nan\n",
        "[env]\ngrad_clip = nan\n",
        "[env]\nseed_lr = inf\n",
        "[run]\ntime_budget_minutes = inf\n",
        "[reward]\nrent_weight = inf\n",
    ],
)
def test_senseless_non_finite_values_are_refused(text: str, tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    key = text.splitlines()[1].split(" = ")[0]
    with pytest.raises(ConfigError, match=rf"\.{key} must be"):
        resolve("digits", read_toml(path), {})


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**64, 2**70])
def test_seeds_outside_32_bits_are_refused(seed: int) -> None:
    with pytest.raises(ConfigError, match=r"run\.seed must be in \[0, 4294967295\]"):
        resolve("digits", {}, {"seed": seed})


def test_the_largest_seed_is_accepted() -> None:
    assert resolve("digits", {}, {"seed": MAX_SEED}).run.seed == MAX_SEED


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("bogus", r"unknown device 'bogus'"),
        ("cuda", r"no usable CUDA GPU; use --device cpu"),
        ("cuda:3", r"no usable CUDA GPU"),
        ("meta", r"unsupported device 'meta'"),
    ],
)
def test_devices_this_machine_lacks_are_refused(device: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_device(device)


def test_cpu_is_a_device() -> None:
    check_device("cpu")


def test_a_config_that_is_not_utf8_or_not_a_file_is_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[run]\n# r\xe9glage\nseed = 1\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.toml is not UTF-8 text"):
        read_toml(latin)
    with pytest.raises(ConfigError, match=r"is a directory, not a TOML file"):
        read_toml(tmp_path)
