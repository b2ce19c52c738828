"""The resolved configuration of a run: task defaults, then a TOML file, then command-line flags.

A TOML file has the sections ``[run]``, ``[env]``, ``[reward]``, ``[ppo]`` and ``[policy]``; any unknown section
or key is an error naming it and listing the known ones (a typo must never be silently ignored). The resolved
config is written to the run directory as ``config.json`` and is what ``--resume`` reads back.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.app.tasks import TaskPreset, get_task
from esper.leyline import ConfigError
from esper.simic.env_config import EnvConfig
from esper.simic.ppo import PPOConfig
from esper.simic.rewards import RewardConfig

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
BACKENDS = ("auto", "inprocess", "processes")


@dataclass(frozen=True)
class RunSettings:
    """How much to run and where. ``epochs`` None means the task's episode length."""

    rounds: int = 10
    envs: int = 8
    episodes: int = 8
    epochs: int | None = None
    seed: int = 0
    device: str = "cpu"
    compile_mode: str | None = None
    backend: str = "auto"
    workers: int | None = None
    #: PPO only: stop (at a checkpoint) before a round that would end after this many minutes of training.
    time_budget_minutes: float | None = None
    #: torch threads per process that runs envs (in-process: this one; default 1); with worker processes, per
    #: worker (default: an equal share of the cores). Defaults never oversubscribe the machine.
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("rounds", "envs", "episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"run.{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"run.epochs must be >= 1, got {self.epochs}")
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"compile mode must be one of {', '.join(COMPILE_MODES)} or none, got {self.compile_mode!r}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(f"run.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.time_budget_minutes is not None and not self.time_budget_minutes > 0:
            raise ConfigError(f"run.time_budget_minutes must be > 0, got {self.time_budget_minutes}")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"run.{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class PolicySettings:
    kind: str = "lstm"
    sizes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    task: str
    run: RunSettings
    env: EnvConfig
    ppo: PPOConfig
    policy: PolicySettings

    @property
    def preset(self) -> TaskPreset:
        return get_task(self.task)

    @property
    def episode_epochs(self) -> int:
        return self.env.max_epochs

    def to_dict(self) -> dict[str, Any]:
        env = dataclasses.asdict(self.env)
        reward = env.pop("reward")
        return {
            "task": self.task,
            "run": dataclasses.asdict(self.run),
            "env": env,
            "reward": reward,
            "ppo": dataclasses.asdict(self.ppo),
            "policy": {"kind": self.policy.kind, **self.policy.sizes},
        }


_SECTIONS = ("run", "env", "reward", "ppo", "policy")


def _override(instance: Any, values: dict[str, Any], section: str, skip: tuple[str, ...] = ()) -> Any:
    """``dataclasses.replace`` with every key checked against the dataclass's fields and types."""
    hints = typing.get_type_hints(type(instance))
    known = [f.name for f in dataclasses.fields(instance) if f.name not in skip]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{section}.{key}'; known keys in [{section}]: {', '.join(known)}")
        changes[key] = _checked(value, hints[key], f"{section}.{key}")
    return dataclasses.replace(instance, **changes)


def _checked(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        allowed: tuple[Any, ...] = (str,)
    elif origin in (typing.Union, types.UnionType):
        allowed = typing.get_args(hint)
    else:
        allowed = (hint,)
    if value is None or (value == "none" and type(None) in allowed):
        if type(None) not in allowed:
            raise ConfigError(f"config key '{name}' cannot be none")
        return None
    if float in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    for kind in allowed:
        if kind in (int, str, bool) and type(value) is kind:
            return value
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"config key '{name}' must be {expected}, got {type(value).__name__} {value!r}")


def read_toml(path: Path) -> dict[str, dict[str, Any]]:
    """Parse a config file; unknown sections and non-table sections are errors."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section [{section}] in {path}; known sections: {', '.join(_SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] in {path} must be a table of keys")
    return data


def resolve(task_name: str, file_values: dict[str, dict[str, Any]], flags: dict[str, Any]) -> RunConfig:
    """Task defaults, overridden by the file's sections, overridden by the flags (``run`` keys only)."""
    preset = get_task(task_name)
    run = _override(RunSettings(), file_values.get("run", {}), "run")
    run = _override(run, {k: v for k, v in flags.items() if v is not None}, "run")
    env = _override(preset.env, file_values.get("env", {}), "env", skip=("reward", "max_epochs", "device"))
    reward = _override(RewardConfig(), file_values.get("reward", {}), "reward")
    run = dataclasses.replace(run, epochs=run.epochs or preset.episode_epochs)
    env = dataclasses.replace(env, reward=reward, max_epochs=run.epochs, device=run.device)
    ppo = _override(PPOConfig(), file_values.get("ppo", {}), "ppo")
    policy_values = dict(file_values.get("policy", {}))
    kind = policy_values.pop("kind", "lstm")
    if not isinstance(kind, str):
        raise ConfigError(f"policy.kind must be a string, got {kind!r}")
    for key, value in policy_values.items():
        if isinstance(value, float) or not isinstance(value, int):
            raise ConfigError(f"policy size '{key}' must be an integer (or bool), got {value!r}")
    return RunConfig(task_name, run, env, ppo, PolicySettings(kind, policy_values))


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a config written by ``RunConfig.to_dict`` (for ``--resume``)."""
    try:
        task = data["task"]
        run_values = dict(data["run"])
        env_values = dict(data["env"])
        sections = {
            "run": {},
            "env": {},
            "reward": dict(data["reward"]),
            "ppo": dict(data["ppo"]),
            "policy": dict(data["policy"]),
        }
    except (KeyError, TypeError) as error:
        raise ConfigError(f"run config is incomplete: missing {error}") from None
    epochs = env_values.pop("max_epochs")
    device = env_values.pop("device")
    sections["env"] = env_values
    run_values.update(epochs=epochs, device=device)
    sections["run"] = run_values
    return resolve(task, sections, {})
