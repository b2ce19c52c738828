"""Shared preprocessing: a fixed stratified train/validation/test split, per-channel standardization from the
training data alone, and what a loaded task records about its split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from esper.simic.envs.task_data import TaskData


@dataclass(frozen=True)
class DataSplit:
    """How a task divides its examples into train / validation / test (never overlapping): what a run records
    beside its results. ``seed`` is None when the split is positional (no randomness); ``examples`` says what one
    example is (``images``, ``windows of 64 bytes``)."""

    description: str
    seed: int | None
    train: int
    validation: int
    test: int
    examples: str


@dataclass(frozen=True)
class LoadedTask:
    """A task's tensors and the split they were cut by."""

    task: TaskData
    split: DataSplit

    def record(self) -> dict[str, Any]:
        """The split as a run records it (config and results): description, split seed, what an example is, and
        the sizes actually loaded."""
        return {
            "split": self.split.description,
            "split_seed": self.split.seed,
            "examples": self.split.examples,
            "sizes": self.task.split_sizes(),
        }


def stratified_split(
    labels: np.ndarray, validation_fraction: float, test_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted train, validation and test indices. Each class is shuffled by a generator seeded with ``split_seed``
    alone (never the run seed) and cut in the same proportions, so every split keeps the class balance."""
    rng = np.random.default_rng(split_seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * test_fraction)
        n_val = round(len(members) * validation_fraction)
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test : n_test + n_val])
        parts[0].append(members[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(part)) for part in parts)
    return train, val, test


def _floats(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))


def _labels(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.int64))


def standardized_task(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
) -> TaskData:
    """(images ``[N, C, H, W]``, labels) per split, every split scaled by the training set's per-channel mean and
    std (validation and test statistics never leak into the preprocessing)."""
    train_images = _floats(train[0])
    mean = train_images.mean(dim=(0, 2, 3), keepdim=True)
    std = train_images.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
    return TaskData(
        train_inputs=(train_images - mean) / std,
        train_targets=_labels(train[1]),
        val_inputs=(_floats(validation[0]) - mean) / std,
        val_targets=_labels(validation[1]),
        test_inputs=(_floats(test[0]) - mean) / std,
        test_targets=_labels(test[1]),
        num_classes=num_classes,
    )
