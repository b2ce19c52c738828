"""The resolved configuration of a run: task defaults, then a TOML file, then command-line flags.

A TOML file has the sections ``[run]``, ``[env]``, ``[reward]``, ``[gates]``, ``[ppo]``, ``[warm_start]`` and
``[policy]``; any unknown section or key is an error naming it and listing the known ones (a typo must never be
silently ignored). The resolved config is written to the run directory as ``config.json`` and is what
``--resume`` reads back.

Every value survives that round trip: the few settings where infinity means something (``ppo.max_grad_norm``
and ``env.grad_clip``: no clipping; ``ppo.target_kl``: no early stop) are written to ``config.json`` as the
string ``"inf"``, and every other non-finite number is refused where the settings are validated.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from esper.app.tasks import GateSettings, TaskPreset, get_task
from esper.kasmina import GateConfig
from esper.leyline import ConfigError
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.rewards import RewardConfig
from esper.simic.ppo.cloning import CloningConfig
from esper.simic.ppo.updater import PPOConfig
from esper.tamiyo import COMPILE_MODES

BACKENDS = ("auto", "inprocess", "processes", "ray")
#: The ``[run]`` keys that say where envs run: flags of every command, and changeable on ``--resume``.
#: ``[run]`` keys that change what a run logs, not what it computes: changeable on ``--resume``.
LOGGING_KEYS = ("record_decisions",)
BACKEND_KEYS = (
    "backend",
    "workers",
    "threads",
    "ray_address",
    "ray_num_cpus",
    "ray_cpus_per_actor",
    "ray_gpus_per_actor",
)
#: Episode seeds are derived from the low 32 bits of the run seed, so a larger seed would repeat a smaller one.
MAX_SEED = 2**32 - 1
_INFINITY = "inf"


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
    #: Ray backend: the cluster to join (None: the RAY_ADDRESS variable, else a Ray started on this machine with
    #: ``ray_num_cpus`` CPUs, all cores when None), and what each env actor reserves (CPUs: None shares a local
    #: Ray's CPUs among the actors, one per actor on a cluster).
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    ray_cpus_per_actor: float | None = None
    ray_gpus_per_actor: float = 0.0
    #: PPO only: validate the argmax policy after every this many rounds (and after the last round), on
    #: ``validation_episodes`` training-range selection seeds; the best validation is kept as checkpoints/best.pt.
    validate_every: int = 5
    validation_episodes: int = 8
    #: Log every decision with the controller's reasons (``decision`` events). None: the command's default (on
    #: for episode runs, off for PPO training, where it costs time: docs/performance.md).
    record_decisions: bool | None = None

    def records_decisions(self, default: bool) -> bool:
        return default if self.record_decisions is None else self.record_decisions

    def __post_init__(self) -> None:
        for name in ("rounds", "envs", "episodes", "validate_every", "validation_episodes"):
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
        if self.time_budget_minutes is not None and not (
            math.isfinite(self.time_budget_minutes) and self.time_budget_minutes > 0
        ):
            raise ConfigError(f"run.time_budget_minutes must be > 0 and finite, got {self.time_budget_minutes}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"run.seed must be in [0, {MAX_SEED}] (episode seeds use 32 bits), got {self.seed}")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"run.{name} must be >= 1, got {value}")
        if self.ray_num_cpus is not None and self.ray_num_cpus < 1:
            raise ConfigError(f"run.ray_num_cpus must be >= 1, got {self.ray_num_cpus}")
        if self.ray_cpus_per_actor is not None and not self.ray_cpus_per_actor > 0:
            raise ConfigError(f"run.ray_cpus_per_actor must be > 0, got {self.ray_cpus_per_actor}")
        if not self.ray_gpus_per_actor >= 0:
            raise ConfigError(f"run.ray_gpus_per_actor must be >= 0, got {self.ray_gpus_per_actor}")


@dataclass(frozen=True)
class WarmStartSettings:
    """``esper train ppo``'s optional behaviour-cloning warm start (``esper.simic.warm_start``): before the first
    round, ``demonstrator`` (any ``--controller`` value, e.g. ``best-schedule:runs/pick/best_schedule.json``) plays
    ``episodes`` training-range episodes and the policy is fitted to its actions. ``None``: PPO from scratch."""

    demonstrator: str | None = None
    episodes: int = 32
    max_epochs: int = 50
    minibatch_envs: int = 8
    target_probability: float = 0.9

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"warm_start.episodes must be >= 1, got {self.episodes}")
        CloningConfig(self.max_epochs, self.minibatch_envs, self.target_probability)  # its checks name the key

    @property
    def cloning(self) -> CloningConfig:
        return CloningConfig(self.max_epochs, self.minibatch_envs, self.target_probability)


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
    gates: GateSettings = field(default_factory=GateSettings)
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)

    @property
    def preset(self) -> TaskPreset:
        return get_task(self.task)

    @property
    def gate_config(self) -> GateConfig:
        return self.gates.gate_config(self.episode_epochs)

    @property
    def episode_epochs(self) -> int:
        return self.env.max_epochs

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (JSON-safe): an infinite setting is the string ``"inf"``, which ``from_dict`` and
        TOML files both accept."""
        env = dataclasses.asdict(self.env)
        reward = env.pop("reward")
        sections = {
            "run": dataclasses.asdict(self.run),
            "env": env,
            "reward": reward,
            "gates": dataclasses.asdict(self.gates),
            "ppo": dataclasses.asdict(self.ppo),
            "warm_start": dataclasses.asdict(self.warm_start),
        }
        encoded = {
            name: {k: _INFINITY if v == math.inf else v for k, v in values.items()} for name, values in sections.items()
        }
        return {"task": self.task, **encoded, "policy": {"kind": self.policy.kind, **self.policy.sizes}}


def check_device(device: str) -> None:
    """A device this machine has: ``cpu``, ``cuda``/``cuda:N`` with a GPU, or ``mps`` where available."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r} asked, but this machine has no usable CUDA GPU; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"device {device!r} asked, but this machine has {count} CUDA GPU(s)")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r} asked, but MPS is not available on this machine; use --device cpu")
    elif parsed.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use cpu, cuda, cuda:N or mps")


_SECTIONS = ("run", "env", "reward", "gates", "ppo", "warm_start", "policy")


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
    if float in allowed and value == _INFINITY:
        return math.inf
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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a TOML file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}); TOML files are UTF-8") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
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
    gates = _override(preset.gates, file_values.get("gates", {}), "gates")
    gates.gate_config(run.epochs)  # out-of-range thresholds are refused here, before anything runs
    ppo = _override(PPOConfig(), file_values.get("ppo", {}), "ppo")
    warm_start = _override(WarmStartSettings(), file_values.get("warm_start", {}), "warm_start")
    policy_values = dict(file_values.get("policy", {}))
    kind = policy_values.pop("kind", "lstm")
    if not isinstance(kind, str):
        raise ConfigError(f"policy.kind must be a string, got {kind!r}")
    for key, value in policy_values.items():
        if isinstance(value, float) or not isinstance(value, int):
            raise ConfigError(f"policy size '{key}' must be an integer (or bool), got {value!r}")
    return RunConfig(task_name, run, env, ppo, PolicySettings(kind, policy_values), gates, warm_start)


def override_run(config: RunConfig, flags: dict[str, Any]) -> RunConfig:
    """``config`` with the given ``[run]`` flags changed (``None``: not given; ``"none"``: remove the setting), the
    envs following the device."""
    run = _override(config.run, {k: v for k, v in flags.items() if v is not None}, "run")
    return dataclasses.replace(config, run=run, env=dataclasses.replace(config.env, device=run.device))


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
            "gates": dict(data["gates"]),
            "ppo": dict(data["ppo"]),
            "warm_start": dict(data["warm_start"]),
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
