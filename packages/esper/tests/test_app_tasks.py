"""Task presets and the embedded digits data: a fixed stratified three-way split, the same tensors every time,
standardized inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esper.app.datasets.cifar10 import CIFAR10_SPLIT
from esper.app.datasets.digits import (
    DIGITS_SPLIT,
    DIGITS_SPLIT_SEED,
    DIGITS_TEST_FRACTION,
    DIGITS_VALIDATION_FRACTION,
    load_digits_task,
)
from esper.app.datasets.splits import standardized_task, stratified_split
from esper.app.tasks import BYTES_VALIDATION_WINDOWS, DEFAULT_TASK, TASKS, CNNTaskHost, get_task
from esper.leyline import ConfigError, Topology


def test_unknown_task_error_lists_every_known_task() -> None:
    with pytest.raises(ConfigError, match="unknown task 'mnist'") as error:
        get_task("mnist")
    for name in TASKS:
        assert name in str(error.value)


def test_presets_are_consistent() -> None:
    assert DEFAULT_TASK in TASKS
    assert set(TASKS) >= {"digits", "digits-strong", "cifar10", "cifar10-impaired", "pydoc-bytes", "tinystories-bytes"}
    for name, preset in TASKS.items():
        assert preset.name == name
        assert preset.env.max_epochs == preset.episode_epochs
        model = preset.model_factory(preset.slots, preset.episode_epochs)(0)
        assert model.slot_config == preset.slots
        assert model.topology is preset.topology  # what controllers and policies of the task are built for
        inputs = preset.host.example_input(2)
        if isinstance(preset.host, CNNTaskHost):
            assert model(inputs).shape == (2, preset.host.config.num_classes)
            assert preset.metric == "accuracy"
        else:
            context = preset.host.config.context
            assert model(inputs).shape == (2, context, preset.host.config.vocab_size)
            assert preset.metric == "next-token accuracy"


def test_byte_tasks_name_the_transformer_topology_and_load_token_windows() -> None:
    preset = get_task("pydoc-bytes")
    assert preset.topology is Topology.TRANSFORMER and get_task("tinystories-bytes").topology is Topology.TRANSFORMER
    assert preset.slots.names() == ("r0c0", "r0c1")
    loaded = preset.load_data(None)
    task = loaded.task
    assert task.num_classes == 256 and task.targets_per_example == 64
    assert task.train_inputs.dtype == task.train_targets.dtype == torch.int64
    assert task.train_inputs.shape == task.train_targets.shape == (loaded.split.train, 64)
    windows = BYTES_VALIDATION_WINDOWS
    assert task.val_inputs.shape == (windows, 64) and loaded.split.validation == windows
    assert loaded.record()["examples"] == "windows of 64 bytes"
    assert loaded.record()["sizes"] == {
        "train": loaded.split.train,
        "validation": loaded.split.validation,
        "test": loaded.split.test,
    }
    assert preset.env.epoch_examples is not None and preset.env.epoch_examples < loaded.split.train


def test_tinystories_needs_a_data_directory() -> None:
    with pytest.raises(ConfigError, match="task 'tinystories-bytes' reads its data from disk: pass --data-dir"):
        get_task("tinystories-bytes").load_data(None)


def test_cifar_presets_need_a_data_directory() -> None:
    with pytest.raises(ConfigError, match="pass --data-dir"):
        get_task("cifar10").load_data(None)


def test_digits_split_is_fixed_stratified_disjoint_and_complete() -> None:
    from sklearn.datasets import load_digits

    labels = load_digits().target
    parts = stratified_split(labels, DIGITS_VALIDATION_FRACTION, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    again = stratified_split(labels, DIGITS_VALIDATION_FRACTION, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    train, val, test = parts
    assert (len(train), len(val), len(test)) == (DIGITS_SPLIT.train, DIGITS_SPLIT.validation, DIGITS_SPLIT.test)
    assert (len(train), len(val), len(test)) == (1259, 269, 269)
    assert DIGITS_SPLIT.seed == DIGITS_SPLIT_SEED == 0
    for a, b in ((train, val), (train, test), (val, test)):
        assert len(np.intersect1d(a, b)) == 0
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    for label in range(10):  # stratified: every class keeps its share in every split (up to rounding)
        share = np.mean(labels == label)
        for part in (val, test):
            assert abs(np.mean(labels[part] == label) - share) < 0.01
    other = stratified_split(labels, DIGITS_VALIDATION_FRACTION, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED + 1)
    assert not np.array_equal(test, other[2])


def test_presets_record_their_split() -> None:
    assert get_task("digits").load_data(None).split == DIGITS_SPLIT == get_task("digits-strong").load_data(None).split
    assert DIGITS_SPLIT.examples == CIFAR10_SPLIT.examples == "images"
    assert (CIFAR10_SPLIT.train, CIFAR10_SPLIT.validation, CIFAR10_SPLIT.test, CIFAR10_SPLIT.seed) == (
        45_000,
        5_000,
        10_000,
        None,
    )
    assert "data_batch_5" in CIFAR10_SPLIT.description and "test_batch" in CIFAR10_SPLIT.description


def test_digits_loads_the_same_standardized_tensors_twice() -> None:
    first = load_digits_task()
    second = load_digits_task()
    for a, b in (
        (first.train_inputs, second.train_inputs),
        (first.train_targets, second.train_targets),
        (first.val_inputs, second.val_inputs),
        (first.val_targets, second.val_targets),
        (first.test_inputs, second.test_inputs),
        (first.test_targets, second.test_targets),
    ):
        assert torch.equal(a, b)
    assert first.num_classes == 10
    assert first.split_sizes() == {"train": 1259, "validation": 269, "test": 269}
    assert first.train_inputs.shape == (1259, 1, 8, 8) and first.test_inputs.shape == (269, 1, 8, 8)
    assert first.train_inputs.dtype == torch.float32 and first.train_targets.dtype == torch.int64
    assert set(first.train_targets.tolist()) == set(range(10)) == set(first.val_targets.tolist())
    assert set(first.test_targets.tolist()) == set(range(10))
    # standardized with the training set's statistics
    assert abs(float(first.train_inputs.mean())) < 1e-5
    assert float(first.train_inputs.std()) == pytest.approx(1.0, abs=1e-4)
    assert abs(float(first.val_inputs.mean())) < 0.1


def test_standardization_uses_training_statistics_per_channel() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(loc=[[[[3.0]]], [[[-2.0]]]], scale=[[[[2.0]]], [[[0.5]]]], size=(2, 50, 4, 4))
    train = train.transpose(1, 0, 2, 3)  # [50, 2 channels, 4, 4]
    val = np.full((3, 2, 4, 4), 3.0)
    test = np.full((4, 2, 4, 4), -2.0)
    task = standardized_task(
        (train, np.zeros(50, dtype=np.int64)),
        (val, np.ones(3, dtype=np.int64)),
        (test, np.ones(4, dtype=np.int64)),
        num_classes=2,
    )
    per_channel_mean = task.train_inputs.mean(dim=(0, 2, 3))
    per_channel_std = task.train_inputs.std(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel_mean, torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel_std, torch.ones(2), atol=1e-5, rtol=0)
    raw = torch.from_numpy(train).float()
    mean, std = raw.mean(dim=(0, 2, 3)), raw.std(dim=(0, 2, 3))
    torch.testing.assert_close(task.val_inputs[0, :, 0, 0], (3.0 - mean) / std, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(task.test_inputs[0, :, 0, 0], (-2.0 - mean) / std, atol=1e-4, rtol=1e-4)


def test_digits_splits_hold_exactly_their_own_images() -> None:
    """Validation and test images are exactly the held-out indices of the fixed split (no training image leaks)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train_index, val_index, test_index = stratified_split(
        bunch.target, DIGITS_VALIDATION_FRACTION, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED
    )
    task = load_digits_task()
    assert torch.equal(task.train_targets, torch.from_numpy(bunch.target[train_index]).long())
    assert torch.equal(task.val_targets, torch.from_numpy(bunch.target[val_index]).long())
    assert torch.equal(task.test_targets, torch.from_numpy(bunch.target[test_index]).long())
    raw_train = torch.from_numpy(bunch.images[train_index] / 16.0).float().unsqueeze(1)
    mean, std = raw_train.mean(), raw_train.std()
    for inputs, index in ((task.val_inputs, val_index), (task.test_inputs, test_index)):
        raw = torch.from_numpy(bunch.images[index] / 16.0).float().unsqueeze(1)
        torch.testing.assert_close(inputs, (raw - mean) / std, atol=1e-5, rtol=1e-5)
