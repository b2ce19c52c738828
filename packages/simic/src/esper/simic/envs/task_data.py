"""The tensors of a classification task, as an environment consumes them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esper.leyline import ConfigError


@dataclass(frozen=True)
class TaskData:
    """Training, validation and test sets, already normalized. Inputs ``[N, ...]`` float32, targets ``[N]`` int64.

    Every env sees the full training set each epoch (in its own episode-seeded order) and the same validation set,
    which drives everything the controller sees (reward, counterfactuals, gates, governor, observations). The test
    set is evaluated once per episode, on the model the episode ends with, and only ever reported.
    """

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    val_inputs: torch.Tensor
    val_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        for split, inputs, targets in self._splits():
            if inputs.shape[0] == 0 or inputs.shape[0] != targets.shape[0]:
                raise ConfigError(
                    f"{split} set: need as many targets as inputs (> 0), got {inputs.shape[0]} and {targets.shape[0]}"
                )
            if not inputs.is_floating_point():
                raise ConfigError(f"{split} inputs must be floating point, got {inputs.dtype}")
            if targets.dtype != torch.int64 or targets.dim() != 1:
                raise ConfigError(
                    f"{split} targets must be a 1-D int64 tensor, got {targets.dtype} {tuple(targets.shape)}"
                )
            if int(targets.min()) < 0 or int(targets.max()) >= self.num_classes:
                raise ConfigError(f"{split} targets must lie in [0, {self.num_classes})")
            if inputs.shape[1:] != self.train_inputs.shape[1:]:
                raise ConfigError(
                    f"train and {split} inputs differ in shape: {tuple(self.train_inputs.shape[1:])} "
                    f"vs {tuple(inputs.shape[1:])}"
                )

    def _splits(self) -> tuple[tuple[str, torch.Tensor, torch.Tensor], ...]:
        return (
            ("train", self.train_inputs, self.train_targets),
            ("validation", self.val_inputs, self.val_targets),
            ("test", self.test_inputs, self.test_targets),
        )

    def split_sizes(self) -> dict[str, int]:
        """Examples per split, for the run's config and results."""
        return {split: int(targets.shape[0]) for split, _, targets in self._splits()}

    def to(self, device: torch.device) -> TaskData:
        """The same task on ``device``; tensors already there are shared, not copied."""
        return TaskData(
            self.train_inputs.to(device),
            self.train_targets.to(device),
            self.val_inputs.to(device),
            self.val_targets.to(device),
            self.test_inputs.to(device),
            self.test_targets.to(device),
            self.num_classes,
        )

    def shared(self) -> TaskData:
        """Move the tensors to shared memory (in place), so worker processes map them instead of copying."""
        for _, inputs, targets in self._splits():
            inputs.share_memory_()  # type: ignore[no-untyped-call]
            targets.share_memory_()  # type: ignore[no-untyped-call]
        return self
