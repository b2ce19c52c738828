"""Shared preprocessing: a fixed train/validation split and per-channel standardization from training data."""

from __future__ import annotations

import numpy as np
import torch

from esper.simic.task_data import TaskData


def fixed_split(n_samples: int, validation_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/validation split that depends only on ``split_seed`` (never on the run seed)."""
    order = np.random.default_rng(split_seed).permutation(n_samples)
    n_val = round(n_samples * validation_fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def standardized_task(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    num_classes: int,
) -> TaskData:
    """Images ``[N, C, H, W]`` scaled by the training set's per-channel mean and std."""
    train = torch.from_numpy(np.ascontiguousarray(train_images, dtype=np.float32))
    val = torch.from_numpy(np.ascontiguousarray(val_images, dtype=np.float32))
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)
    return TaskData(
        train_inputs=(train - mean) / std,
        train_targets=torch.from_numpy(np.asarray(train_labels, dtype=np.int64)),
        val_inputs=(val - mean) / std,
        val_targets=torch.from_numpy(np.asarray(val_labels, dtype=np.int64)),
        num_classes=num_classes,
    )
