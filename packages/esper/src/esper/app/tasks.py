"""Task presets: which data, which host (and so which topology), which slots, how long an episode is, sensible
training settings, and the metric the reward and the reports use.

``digits`` is the embedded default: scikit-learn's bundled 8x8 digits and an impaired CNN host (base 1, kernel 1)
that reaches only ~20-30 % alone, so what the controller grows decides the outcome. The CIFAR-10 presets read the
standard python batches from a directory the user names. ``pydoc-bytes`` is the embedded language-modelling task:
byte-level next-token prediction on the standard library's pydoc topics with an impaired transformer host (no
attention: only a grown attention seed lets it read past the current byte);
``tinystories-bytes`` reads TinyStories from a directory. Every task's loader returns its fixed train / validation
/ test split beside the data: validation drives the episode, test is what results report.

The metric of a language-modelling task is next-token accuracy (the share of positions whose most likely next
byte is the right one), not a loss-based score: every part of an episode that reads the metric (the reward's
accuracy gain, counterfactual contributions, the fossilize gate's minimum contribution, the policy's observation
features) is written in percentage points of a bounded accuracy, and next-token accuracy keeps those units and
ranges, so the same reward and thresholds hold. The validation loss (per-token cross-entropy, what the governor
watches) is in the event log beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch

from esper.app.datasets.cifar10 import CIFAR10_SPLIT, load_cifar10_task
from esper.app.datasets.digits import DIGITS_SPLIT, load_digits_task
from esper.app.datasets.pydoc_topics import load_pydoc_topics_task
from esper.app.datasets.splits import LoadedTask
from esper.app.datasets.tinystories import load_tinystories_task
from esper.kasmina import (
    CNN_HOST_PRESETS,
    TRANSFORMER_HOST_PRESETS,
    CNNHostConfig,
    GateConfig,
    TransformerHostConfig,
)
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
from esper.simic.envs.model_factories import CNNModelFactory, ModelFactory, TransformerModelFactory

#: What the reward and the reports measure: the share of examples classified right, or of positions whose next
#: token is predicted right.
CLASSIFICATION_METRIC = "accuracy"
LANGUAGE_MODEL_METRIC = "next-token accuracy"
#: Episode length of the byte-level tasks (the digits length: the same number of optimizer steps per episode).
BYTES_EPISODE_EPOCHS = DIGITS_EPISODE_EPOCHS


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
class CNNTaskHost:
    """A CNN host of kasmina's family, by preset name, on square images of ``image_size``."""

    preset: str
    image_size: int

    @property
    def topology(self) -> Topology:
        return Topology.CNN

    @property
    def config(self) -> CNNHostConfig:
        return CNN_HOST_PRESETS[self.preset]

    def describe(self) -> str:
        config = self.config
        return f"CNN: base {config.base_channels}, kernel {config.kernel_size}, {config.n_blocks} blocks"

    def example_input(self, batch: int) -> torch.Tensor:
        """Zero images of the host's shape, for shape checks."""
        return torch.zeros(batch, self.config.in_channels, self.image_size, self.image_size)

    def factory(self, slots: SlotConfig, gates: GateConfig) -> CNNModelFactory:
        return CNNModelFactory(self.config, self.image_size, slots, gates)


@dataclass(frozen=True)
class TransformerTaskHost:
    """A decoder-only transformer host of kasmina's presets, by name."""

    preset: str

    @property
    def topology(self) -> Topology:
        return Topology.TRANSFORMER

    @property
    def config(self) -> TransformerHostConfig:
        return TRANSFORMER_HOST_PRESETS[self.preset]

    def describe(self) -> str:
        config = self.config
        attention = f"{config.heads} head(s)" if config.heads else "no attention"
        return f"transformer: width {config.width}, {attention}, {config.n_blocks} blocks, context {config.context}"

    def example_input(self, batch: int) -> torch.Tensor:
        """Zero token windows of the host's context, for shape checks."""
        return torch.zeros(batch, self.config.context, dtype=torch.int64)

    def factory(self, slots: SlotConfig, gates: GateConfig) -> TransformerModelFactory:
        return TransformerModelFactory(self.config, slots, gates)


@dataclass(frozen=True)
class TaskPreset:
    """One task: its data, its host and slots (the host's ``topology`` is what its slots carry, which every
    controller and policy of the task is built for), its episode length, training settings and the name of the
    metric its reward and reports use (``metric``)."""

    name: str
    description: str
    data_source: str
    host: CNNTaskHost | TransformerTaskHost
    slots: SlotConfig
    episode_epochs: int
    env: EnvConfig
    loader: Callable[[Path | None], LoadedTask]
    metric: str = CLASSIFICATION_METRIC
    needs_data_dir: bool = False
    gates: GateSettings = GateSettings()

    @property
    def topology(self) -> Topology:
        return self.host.topology

    def load_data(self, data_dir: Path | None) -> LoadedTask:
        if self.needs_data_dir and data_dir is None:
            raise ConfigError(f"task {self.name!r} reads its data from disk: pass --data-dir DIR")
        return self.loader(data_dir)

    def model_factory(
        self, slots: SlotConfig, episode_epochs: int, gate_config: GateConfig | None = None
    ) -> ModelFactory:
        """Models of this task; ``gate_config`` (a run's ``[gates]``) defaults to the preset's own thresholds."""
        gates = gate_config if gate_config is not None else self.gates.gate_config(episode_epochs)
        return self.host.factory(slots, gates)


def _digits(_: Path | None) -> LoadedTask:
    return LoadedTask(load_digits_task(), DIGITS_SPLIT)


def _cifar(data_dir: Path | None) -> LoadedTask:
    if data_dir is None:
        raise ConfigError("CIFAR-10 needs --data-dir")
    return LoadedTask(load_cifar10_task(data_dir), CIFAR10_SPLIT)


def _pydoc_bytes(_: Path | None) -> LoadedTask:
    return load_pydoc_topics_task(BYTES_CONTEXT).with_validation_windows(BYTES_VALIDATION_WINDOWS).loaded()


def _tinystories(data_dir: Path | None) -> LoadedTask:
    if data_dir is None:
        raise ConfigError("TinyStories needs --data-dir")
    data = load_tinystories_task(data_dir, BYTES_CONTEXT, eval_bytes=TINYSTORIES_EVAL_BYTES)
    return data.with_validation_windows(BYTES_VALIDATION_WINDOWS).loaded()


_DIGITS_ENV = EnvConfig(max_epochs=DIGITS_EPISODE_EPOCHS, batch_size=64, host_lr=0.02, seed_lr=0.02)
_CIFAR_ENV = EnvConfig(
    max_epochs=CIFAR_EPISODE_EPOCHS, batch_size=128, host_lr=0.05, seed_lr=0.05, weight_decay=5e-4, val_batch_size=1000
)
#: The byte-level tasks: Adam (a small transformer learns many times faster with it than with SGD), 128 sampled
#: windows per epoch in batches of 8 (16 optimizer steps) and validation over 128 windows in batches of 64, so an
#: epoch costs about what a digits epoch does (docs/performance.md). At this size a step's cost is mostly
#: per-operator overhead, not arithmetic: the sizes were chosen on training-range selection seeds among variants of
#: 12-20 steps and 128-192 validation windows, trading growth's gain against epoch time (docs/performance.md).
_BYTES_ENV = EnvConfig(
    max_epochs=BYTES_EPISODE_EPOCHS,
    batch_size=8,
    epoch_examples=128,
    optimizer="adam",
    host_lr=0.01,
    seed_lr=0.01,
    val_batch_size=64,
)
BYTES_CONTEXT = 64
#: Validation windows of the byte-level tasks (8,192 bytes): validation runs every epoch once per counterfactual
#: configuration, and the whole pydoc validation block (728 windows) would cost several times the epoch's training.
BYTES_VALIDATION_WINDOWS = 128
#: Bytes of TinyStories' validation file read for each of validation and test (whole stories): about the size of
#: the pydoc test block; validation then keeps its first ``BYTES_VALIDATION_WINDOWS`` windows.
TINYSTORIES_EVAL_BYTES = 50_000

_DIGITS_SOURCE = "scikit-learn's bundled digits (1,797 images; train/val/test 1,259/269/269, split seed 0)"
_CIFAR_SOURCE = "CIFAR-10 python batches from --data-dir (train/val/test 45,000/5,000/10,000)"
_PYDOC_SOURCE = "Python's own pydoc_data.topics as bytes (~466 KB; contiguous 80/10/10 % train/val/test)"
_TINYSTORIES_SOURCE = "TinyStories text files from --data-dir, as bytes (2 MB train; 12 KB val, 50 KB test)"


def _digits_preset(name: str, description: str, host_preset: str) -> TaskPreset:
    return TaskPreset(
        name,
        description,
        _DIGITS_SOURCE,
        CNNTaskHost(host_preset, 8),
        SlotConfig.after_blocks(3),
        DIGITS_EPISODE_EPOCHS,
        _DIGITS_ENV,
        _digits,
    )


def _cifar_preset(name: str, description: str, host_preset: str) -> TaskPreset:
    return TaskPreset(
        name,
        description,
        _CIFAR_SOURCE,
        CNNTaskHost(host_preset, 32),
        SlotConfig.after_blocks(3),
        CIFAR_EPISODE_EPOCHS,
        _CIFAR_ENV,
        _cifar,
        needs_data_dir=True,
    )


def _bytes_preset(
    name: str,
    description: str,
    host_preset: str,
    source: str,
    loader: Callable[[Path | None], LoadedTask],
    *,
    needs_data_dir: bool,
) -> TaskPreset:
    return TaskPreset(
        name,
        description,
        source,
        TransformerTaskHost(host_preset),
        SlotConfig.after_blocks(TRANSFORMER_HOST_PRESETS[host_preset].n_blocks),
        BYTES_EPISODE_EPOCHS,
        _BYTES_ENV,
        loader,
        metric=LANGUAGE_MODEL_METRIC,
        needs_data_dir=needs_data_dir,
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
            _bytes_preset(
                "pydoc-bytes",
                "impaired byte-level transformer (width 16, no attention, MLP x1) on Python's pydoc topics: "
                "only a grown attention seed reads past the current byte",
                "bytes_impaired",
                _PYDOC_SOURCE,
                _pydoc_bytes,
                needs_data_dir=False,
            ),
            _bytes_preset(
                "pydoc-bytes-small",
                "small byte-level transformer (width 32, 2 heads, MLP x2) on Python's pydoc topics",
                "bytes_small",
                _PYDOC_SOURCE,
                _pydoc_bytes,
                needs_data_dir=False,
            ),
            _bytes_preset(
                "tinystories-bytes",
                "impaired byte-level transformer (width 16, no attention, MLP x1) on TinyStories from --data-dir",
                "bytes_impaired",
                _TINYSTORIES_SOURCE,
                _tinystories,
                needs_data_dir=True,
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
