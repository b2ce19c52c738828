"""PPO training checkpoints: written atomically after every update, validated on load.

A checkpoint holds everything resume needs to continue exactly: the policy's state (weights, observation
normalizer, schema version) and build config, the updater (optimizer, return normalizer, round counter), the RNG
states, and the run config it was written under.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.leyline import CheckpointError
from esper.simic.atomic_files import torch_save_atomic

CHECKPOINT_FORMAT = 1
_REQUIRED_KEYS = ("format", "rounds_completed", "policy_state", "policy_build_config", "updater_state", "rng", "config")


@dataclass
class TrainingCheckpoint:
    rounds_completed: int
    policy_state: dict[str, Any]
    policy_build_config: dict[str, Any]
    updater_state: dict[str, Any]
    rng: dict[str, Any]
    config: dict[str, Any]


def capture_rng_states() -> dict[str, Any]:
    """Global RNG states (torch CPU, Python, numpy). Episode and sampling RNGs are derived per round from the
    run seed, so these matter only for code that draws from the globals."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, [int(k) for k in keys], int(position), int(has_gauss), float(cached_gaussian)],
    }


def seed_rng_states(seed: int) -> None:
    """Seed the global generators (torch, Python, NumPy) from the run seed when a run starts. Nothing in a run
    should draw from them, but checkpoints record their states: seeded, two runs of the same command write the
    same checkpoint, and whatever might draw from them draws the same numbers every time."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global generators; a state a generator rejects (an invalid mt19937 state) is a ``CheckpointError``."""
    try:
        torch.set_rng_state(states["torch"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint rng.torch is not a valid generator state: {error}") from None
    version, internal, gauss = states["python"]
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    try:
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint rng.python or rng.numpy is not a valid generator state: {error}") from None


def _non_finite_tensors(value: object, where: str) -> list[str]:
    """Paths of the floating tensors inside ``value`` (nested mappings and sequences) with NaN or inf."""
    if isinstance(value, torch.Tensor):
        return [where] if value.is_floating_point() and not bool(torch.isfinite(value).all()) else []
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in _non_finite_tensors(item, f"{where}.{key}")]
    if isinstance(value, list | tuple):
        return [bad for index, item in enumerate(value) for bad in _non_finite_tensors(item, f"{where}[{index}]")]
    return []


def save_checkpoint(path: Path, checkpoint: TrainingCheckpoint) -> None:
    """Write ``checkpoint`` atomically. A policy or optimizer with a NaN or infinite value is refused
    (``CheckpointError``): it could never be resumed, and the previous checkpoint stays intact."""
    corrupt = _non_finite_tensors(checkpoint.policy_state, "policy_state") + _non_finite_tensors(
        checkpoint.updater_state, "updater_state"
    )
    if corrupt:
        raise CheckpointError(f"refusing to save a checkpoint with NaN or infinite values in {corrupt[:5]}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "rounds_completed": checkpoint.rounds_completed,
        "policy_state": checkpoint.policy_state,
        "policy_build_config": checkpoint.policy_build_config,
        "updater_state": checkpoint.updater_state,
        "rng": checkpoint.rng,
        "config": checkpoint.config,
    }
    torch_save_atomic(path, payload)


def verify_archive(path: Path) -> None:
    """A checkpoint is a zip archive whose every member carries a CRC-32: reading them all detects flipped or
    truncated bytes before anything is unpickled (``torch.load`` itself does not check them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {_first_line(error)}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if damaged is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable: the checksum of {damaged!r} does not match its bytes"
        )


def load_checkpoint(path: Path) -> TrainingCheckpoint:
    """Read a checkpoint; a missing, damaged, foreign or incomplete file raises ``CheckpointError``.

    Loading is restricted to tensors and plain containers (``weights_only``): a checkpoint cannot run code, and
    one that tries is refused without advice to lift the restriction.
    """
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    verify_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain containers; it was not written by "
            "Esper and is not loaded"
        ) from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {_first_line(error)}") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} is not an Esper training checkpoint")
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {missing}")
    if type(payload["format"]) is not int or payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {payload['format']}, this Esper reads {CHECKPOINT_FORMAT}")
    try:
        return _checked(payload)
    except CheckpointError as error:
        raise CheckpointError(f"checkpoint {path} is malformed: {error}") from None


def _checked(payload: dict[str, Any]) -> TrainingCheckpoint:
    """Every field resume reads has the type and range it needs. The policy's state and build config are the
    bundle's to check (simic treats them as opaque), the updater state is checked by ``PPOUpdater``."""
    for key in ("policy_state", "policy_build_config", "updater_state", "rng", "config"):
        _require(isinstance(payload[key], dict), f"'{key}' must be a mapping, got {type(payload[key]).__name__}")
    rounds = payload["rounds_completed"]
    if not (isinstance(rounds, int) and type(rounds) is not bool and rounds >= 0):
        raise CheckpointError(f"'rounds_completed' must be an integer >= 0, got {rounds!r}")
    _check_rng(payload["rng"])
    return TrainingCheckpoint(
        rounds_completed=rounds,
        policy_state=payload["policy_state"],
        policy_build_config=payload["policy_build_config"],
        updater_state=payload["updater_state"],
        rng=payload["rng"],
        config=payload["config"],
    )


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckpointError(message)


def _check_rng(rng: dict[str, Any]) -> None:
    """The three global generator states, in exactly the shapes ``capture_rng_states`` writes."""
    state = rng.get("torch")
    reference = torch.get_rng_state()
    _require(
        isinstance(state, torch.Tensor) and state.dtype == reference.dtype and state.shape == reference.shape,
        "'rng.torch' must be a torch generator state",
    )
    python = rng.get("python")
    if not (isinstance(python, list | tuple) and len(python) == 3):
        raise CheckpointError("'rng.python' must be (version, state, gauss)")
    version, internal, gauss = python
    _require(
        type(version) is int
        and version == random.getstate()[0]
        and isinstance(internal, list | tuple)
        and len(internal) == len(random.getstate()[1])
        and all(type(v) is int and v >= 0 for v in internal)
        and (gauss is None or type(gauss) is float),
        "'rng.python' is not a Python random state",
    )
    numpy = rng.get("numpy")
    if not (isinstance(numpy, list | tuple) and len(numpy) == 5):
        raise CheckpointError("'rng.numpy' must have 5 fields")
    name, keys, position, has_gauss, cached = numpy
    _require(
        name == "MT19937"
        and isinstance(keys, list | tuple)
        and len(keys) == 624
        and all(type(k) is int and 0 <= k < 2**32 for k in keys)
        and type(position) is int
        and 0 <= position <= 624
        and has_gauss in (0, 1)
        and type(has_gauss) is int
        and type(cached) is float,
        "'rng.numpy' is not a numpy MT19937 state",
    )
