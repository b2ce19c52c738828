"""Settings of a host-training environment, with defaults that suit the embedded digits task."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from esper.kasmina import CounterfactualBatching
from esper.leyline import DIGITS_EPISODE_EPOCHS, ConfigError
from esper.simic.envs.rewards import RewardConfig

#: The optimizers a host and its seeds can train with.
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class EnvConfig:
    """One env = one host trained for ``max_epochs`` epochs; one RL step = one epoch."""

    max_epochs: int = DIGITS_EPISODE_EPOCHS
    batch_size: int = 64
    #: Training examples per epoch: None trains on the whole training set each epoch; a number draws that many
    #: (without replacement, from the episode's generator) each epoch, for corpora too large for a full pass per
    #: RL step.
    epoch_examples: int | None = None
    val_batch_size: int = 1024
    #: The optimizer of the host and of every seed (each seed has its own): "sgd" (with ``momentum``) or "adam"
    #: (PyTorch's defaults for its betas; small transformers train far faster with it than with SGD).
    optimizer: str = "sgd"
    host_lr: float = 0.02
    seed_lr: float = 0.02
    #: SGD's momentum (Adam keeps its own moment estimates).
    momentum: float = 0.9
    weight_decay: float = 0.0
    #: Learning-rate schedule over the episode, applied to host and seeds alike: "cosine" anneals from the
    #: base rate to 0 at ``max_epochs`` (stable final accuracy on small hosts), "constant" keeps it.
    lr_schedule: str = "cosine"
    #: Global gradient-norm clip over host and seed parameters (0 disables).
    grad_clip: float = 5.0
    #: Germinations allowed per episode (the seed cap the masks and observations see).
    max_germinations: int = 6
    device: str = "cpu"
    reward: RewardConfig = field(default_factory=RewardConfig)
    #: How validation runs the counterfactual configurations: "auto" (separate forwards on the CPU, one fused
    #: forward on a GPU), "fused" or "separate" (kasmina's ``CounterfactualBatching``; same results either way).
    counterfactual_batching: str = CounterfactualBatching.AUTO.value

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "val_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"env.{name} must be >= 1, got {getattr(self, name)}")
        if self.epoch_examples is not None and self.epoch_examples < 1:
            raise ConfigError(
                f"env.epoch_examples must be >= 1 (or unset: the whole training set), got {self.epoch_examples}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"env.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("host_lr", "seed_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"env.{name} must be > 0, got {value}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"env.momentum must be in [0, 1), got {self.momentum}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"env.lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"env.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not self.grad_clip >= 0:  # inf: no clipping, like 0
            raise ConfigError(f"env.grad_clip must be >= 0, got {self.grad_clip}")
        choices = [choice.value for choice in CounterfactualBatching]
        if self.counterfactual_batching not in choices:
            raise ConfigError(
                f"env.counterfactual_batching must be one of {', '.join(choices)}, got {self.counterfactual_batching!r}"
            )
        if self.max_germinations < 0:
            raise ConfigError(f"env.max_germinations must be >= 0, got {self.max_germinations}")

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the base learning rates while training epoch ``epoch`` (0-based)."""
        if self.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * epoch / self.max_epochs))
