"""The tensors of a task, as an environment consumes them: image classification or next-token prediction."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esper.leyline import ConfigError


@dataclass(frozen=True)
class TaskData:
    """Training, validation and test sets of one of two kinds:

    - classification: inputs ``[N, ...]`` floating point (already normalized), targets ``[N]`` int64 class ids;
    - language modelling: inputs ``[N, T]`` int64 token ids, targets ``[N, T]`` int64, the next token at every
      position; inputs and targets share the vocabulary ``[0, num_classes)``.

    Accuracy and loss count every target position (``targets_per_example`` per example), so a language model's
    accuracy is its next-token accuracy. Every env trains on the training set (all of it, or an episode-seeded
    sample each epoch: ``EnvConfig.epoch_examples``) and validates on the whole validation set, which drives
    everything the controller sees (reward, counterfactuals, gates, governor, observations). The test set is
    evaluated once per episode, on the model the episode ends with, and only ever reported.
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
            if self.train_inputs.is_floating_point():
                self._check_classification(split, inputs, targets)
            else:
                self._check_tokens(split, inputs, targets)
            if int(targets.min()) < 0 or int(targets.max()) >= self.num_classes:
                raise ConfigError(f"{split} targets must lie in [0, {self.num_classes})")
            if inputs.shape[1:] != self.train_inputs.shape[1:]:
                raise ConfigError(
                    f"train and {split} inputs differ in shape: {tuple(self.train_inputs.shape[1:])} "
                    f"vs {tuple(inputs.shape[1:])}"
                )

    @staticmethod
    def _check_classification(split: str, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if not inputs.is_floating_point():
            raise ConfigError(f"{split} inputs must be floating point like the training inputs, got {inputs.dtype}")
        if targets.dtype != torch.int64 or targets.dim() != 1:
            raise ConfigError(
                f"{split} targets of floating-point inputs must be a 1-D int64 tensor of class ids, got "
                f"{targets.dtype} {tuple(targets.shape)}"
            )

    def _check_tokens(self, split: str, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if inputs.dtype != torch.int64 or inputs.dim() != 2:
            raise ConfigError(
                f"{split} inputs must be floating point (images) or [N, T] int64 token ids, got "
                f"{inputs.dtype} {tuple(inputs.shape)}"
            )
        if targets.dtype != torch.int64 or targets.shape != inputs.shape:
            raise ConfigError(
                f"{split} targets of token inputs must be int64 of the inputs' shape {tuple(inputs.shape)} (the "
                f"next token at every position), got {targets.dtype} {tuple(targets.shape)}"
            )
        if int(inputs.min()) < 0 or int(inputs.max()) >= self.num_classes:
            raise ConfigError(f"{split} token ids must lie in [0, {self.num_classes})")

    @property
    def targets_per_example(self) -> int:
        """Target positions per example: 1 for a classifier, T for a language model's [N, T] windows."""
        return int(self.train_targets[0].numel())

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
