"""Task presets: which data, which host, which slots, how long an episode is, and sensible training settings.

``digits`` is the embedded default: scikit-learn's bundled 8x8 digits and an impaired CNN host (base 1, kernel 1)
that reaches only ~20-30 % alone, so what the controller grows decides the outcome. The CIFAR-10 presets read the
standard python batches from a directory the user names. Every preset names its fixed train / validation / test
split (``split``): validation drives the episode, test is what results report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from esper.app.datasets.cifar10 import CIFAR10_SPLIT, load_cifar10_task
from esper.app.datasets.digits import DIGITS_SPLIT, load_digits_task
from esper.app.datasets.splits import DataSplit
from esper.kasmina import CNN_HOST_PRESETS, CNNHostConfig, GateConfig
from esper.leyline import (
    CIFAR_EPISODE_EPOCHS,
    DIGITS_EPISODE_EPOCHS,
    MIN_FOSSILIZE_CONTRIBUTION,
    MIN_GRADIENT_HEALTH,
    ConfigError,
    SlotConfig,
    Topology,
)
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.model_factories import CNNModelFactory
from esper.simic.envs.task_data import TaskData


@dataclass(frozen=True)
class GateSettings:
    """A task's lifecycle gate thresholds (the ``[gates]`` section of a run config). ``min_training_epochs``
    None scales the reference TRAINING dwell with the episode length (``GateConfig.for_horizon``)."""

    min_training_epochs: int | None = None
    min_gradient_health: float = MIN_GRADIENT_HEALTH
    min_fossilize_contribution: float = MIN_FOSSILIZE_CONTRIBUTION

    def gate_config(self, episode_epochs: int) -> GateConfig:
        """The thresholds kasmina applies; out-of-range values raise ``ConfigError``."""
        if self.min_training_epochs is None:
            return GateConfig.for_horizon(
                episode_epochs,
                min_gradient_health=self.min_gradient_health,
                min_fossilize_contribution=self.min_fossilize_contribution,
            )
        return GateConfig(self.min_training_epochs, self.min_gradient_health, self.min_fossilize_contribution)


@dataclass(frozen=True)
class TaskPreset:
    """One task: its data and split, its host and slots (``topology`` is what the host's slots carry, which every
    controller and policy of the task is built for), its episode length and training settings."""

    name: str
    description: str
    data_source: str
    host_preset: str
    image_size: int
    slots: SlotConfig
    episode_epochs: int
    env: EnvConfig
    loader: Callable[[Path | None], TaskData]
    split: DataSplit
    topology: Topology
    needs_data_dir: bool = False
    gates: GateSettings = GateSettings()

    @property
    def host(self) -> CNNHostConfig:
        return CNN_HOST_PRESETS[self.host_preset]

    def load_data(self, data_dir: Path | None) -> TaskData:
        if self.needs_data_dir and data_dir is None:
            raise ConfigError(f"task {self.name!r} reads its data from disk: pass --data-dir DIR")
        return self.loader(data_dir)

    def model_factory(
        self, slots: SlotConfig, episode_epochs: int, gate_config: GateConfig | None = None
    ) -> CNNModelFactory:
        """Models of this task; ``gate_config`` (a run's ``[gates]``) defaults to the preset's own thresholds."""
        gates = gate_config if gate_config is not None else self.gates.gate_config(episode_epochs)
        return CNNModelFactory(self.host, self.image_size, slots, gates)


def _digits(_: Path | None) -> TaskData:
    return load_digits_task()


def _cifar(data_dir: Path | None) -> TaskData:
    if data_dir is None:
        raise ConfigError("CIFAR-10 needs --data-dir")
    return load_cifar10_task(data_dir)


_DIGITS_ENV = EnvConfig(max_epochs=DIGITS_EPISODE_EPOCHS, batch_size=64, host_lr=0.02, seed_lr=0.02)
_CIFAR_ENV = EnvConfig(
    max_epochs=CIFAR_EPISODE_EPOCHS, batch_size=128, host_lr=0.05, seed_lr=0.05, weight_decay=5e-4, val_batch_size=1000
)

_DIGITS_SOURCE = "scikit-learn's bundled digits (1,797 images; train/val/test 1,259/269/269, split seed 0)"
_CIFAR_SOURCE = "CIFAR-10 python batches from --data-dir (train/val/test 45,000/5,000/10,000)"


def _digits_preset(name: str, description: str, host_preset: str) -> TaskPreset:
    return TaskPreset(
        name,
        description,
        _DIGITS_SOURCE,
        host_preset,
        8,
        SlotConfig.after_blocks(3),
        DIGITS_EPISODE_EPOCHS,
        _DIGITS_ENV,
        _digits,
        DIGITS_SPLIT,
        Topology.CNN,
    )


def _cifar_preset(name: str, description: str, host_preset: str) -> TaskPreset:
    return TaskPreset(
        name,
        description,
        _CIFAR_SOURCE,
        host_preset,
        32,
        SlotConfig.after_blocks(3),
        CIFAR_EPISODE_EPOCHS,
        _CIFAR_ENV,
        _cifar,
        CIFAR10_SPLIT,
        Topology.CNN,
        needs_data_dir=True,
    )


TASKS: Mapping[str, TaskPreset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            _digits_preset(
                "digits",
                "impaired CNN host (base 1, kernel 1) on 8x8 digits: growth decides the outcome",
                "digits_impaired",
            ),
            _digits_preset(
                "digits-strong",
                "strong CNN host (base 8, kernel 3) on 8x8 digits: little left to gain by growing",
                "digits_strong",
            ),
            _cifar_preset(
                "cifar10", "baseline CNN host (base 8, kernel 3, ~6.4k params) on CIFAR-10", "cifar_baseline"
            ),
            _cifar_preset(
                "cifar10-impaired", "impaired CNN host (base 1, kernel 1, 77 params) on CIFAR-10", "cifar_impaired"
            ),
        )
    }
)

DEFAULT_TASK = "digits"


def get_task(name: str) -> TaskPreset:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
