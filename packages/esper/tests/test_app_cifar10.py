"""The CIFAR-10 loader on small files written in the real "python version" format: pickled dicts with
``b"data"`` (uint8 ``[N, 3072]``, channel-major 32x32) and ``b"labels"``, in ``data_batch_1..5`` and
``test_batch``. The validation set is the tail of ``data_batch_5`` (5,000 images of a real batch; ``VALIDATION``
of these small ones) and ``test_batch`` is the test set."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.app.datasets.cifar10 import (
    CIFAR10_VALIDATION_IMAGES,
    TEST_FILE,
    TRAIN_FILES,
    DatasetError,
    load_cifar10_task,
    locate_cifar10,
)
from esper.app.tasks import get_task

PER_BATCH = 6
VALIDATION = 2


def batch_arrays(index: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(index)
    data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
    labels = [(index + i) % 10 for i in range(PER_BATCH)]
    return data, labels


def write_batch(path: Path, data: object, labels: object, *, py2_module: bool = False) -> None:
    """Protocol 2, as the published batches; ``py2_module`` names numpy's reconstructor the way numpy 1 did."""
    payload = pickle.dumps(
        {b"batch_label": b"training batch", b"labels": labels, b"data": data, b"filenames": [b"x.png"]}, protocol=2
    )
    if py2_module:
        payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(payload)


def write_cifar(directory: Path, *, skip: tuple[str, ...] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate((*TRAIN_FILES, TEST_FILE)):
        if name not in skip:
            data, labels = batch_arrays(index)
            write_batch(directory / name, data, labels, py2_module=index % 2 == 1)
    return directory


def _pixels(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.concatenate(arrays)).float().div(255).view(-1, 3, 32, 32)


def test_loads_train_validation_and_test_from_the_batches_directory_itself(tmp_path: Path) -> None:
    directory = write_cifar(tmp_path / "cifar-10-batches-py")
    task = load_cifar10_task(directory, validation_images=VALIDATION)
    train_count = 5 * PER_BATCH - VALIDATION
    assert task.split_sizes() == {"train": train_count, "validation": VALIDATION, "test": PER_BATCH}
    assert task.train_inputs.shape == (train_count, 3, 32, 32)
    assert task.num_classes == 10
    all_labels = [label for index in range(5) for label in batch_arrays(index)[1]]
    assert task.train_targets.tolist() == all_labels[:train_count]
    assert task.val_targets.tolist() == batch_arrays(4)[1][-VALIDATION:]  # the tail of data_batch_5
    assert task.test_targets.tolist() == batch_arrays(5)[1]  # test_batch
    # channel-major pixels, scaled to [0, 1] and standardized per channel with the training statistics only
    raw = _pixels([batch_arrays(i)[0] for i in range(5)])
    train_raw, val_raw = raw[:train_count], raw[train_count:]
    mean, std = train_raw.mean(dim=(0, 2, 3), keepdim=True), train_raw.std(dim=(0, 2, 3), keepdim=True)
    torch.testing.assert_close(task.train_inputs, (train_raw - mean) / std, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(task.val_inputs, (val_raw - mean) / std, atol=1e-5, rtol=1e-5)
    test_raw = _pixels([batch_arrays(5)[0]])
    torch.testing.assert_close(task.test_inputs, (test_raw - mean) / std, atol=1e-5, rtol=1e-5)


def test_the_preset_carves_5000_validation_images_from_data_batch_5(tmp_path: Path) -> None:
    """A batch too small to give 5,000 validation images and keep a training image is a clear error."""
    write_cifar(tmp_path)
    assert CIFAR10_VALIDATION_IMAGES == 5000
    with pytest.raises(
        DatasetError, match=f"data_batch_5 holds {PER_BATCH} images; the validation set takes its last 5000"
    ):
        get_task("cifar10").load_data(tmp_path)
    with pytest.raises(DatasetError, match="training needs at least one more"):
        load_cifar10_task(tmp_path, validation_images=PER_BATCH)


def test_the_parent_directory_is_accepted_too(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py")
    assert locate_cifar10(tmp_path) == tmp_path / "cifar-10-batches-py"
    from_parent = load_cifar10_task(tmp_path, validation_images=VALIDATION)
    from_child = load_cifar10_task(tmp_path / "cifar-10-batches-py", validation_images=VALIDATION)
    assert torch.equal(from_parent.train_inputs, from_child.train_inputs)
    assert torch.equal(from_parent.test_targets, from_child.test_targets)


def test_train_limit_keeps_the_first_images(tmp_path: Path) -> None:
    directory = write_cifar(tmp_path)
    task = load_cifar10_task(directory, validation_images=VALIDATION, train_limit=4)
    assert task.train_targets.tolist() == batch_arrays(0)[1][:4]


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"CIFAR-10 directory {tmp_path / 'absent'} does not exist"):
        load_cifar10_task(tmp_path / "absent")


def test_missing_files_are_named(tmp_path: Path) -> None:
    write_cifar(tmp_path, skip=("data_batch_3", TEST_FILE))
    with pytest.raises(DatasetError, match="lacks data_batch_3, test_batch") as error:
        load_cifar10_task(tmp_path)
    assert "data_batch_1" not in str(error.value)


def test_missing_files_are_named_where_the_batches_are(tmp_path: Path) -> None:
    """Given the parent of an incomplete ``cifar-10-batches-py``, the error names what that directory lacks."""
    write_cifar(tmp_path / "cifar-10-batches-py", skip=(TEST_FILE,))
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py lacks test_batch \(") as error:
        load_cifar10_task(tmp_path)
    assert "data_batch_1" not in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read CIFAR-10 batch"),
        (b"this is not a pickle", "cannot read CIFAR-10 batch"),
        (None, "cannot read CIFAR-10 batch"),  # a real batch cut in half
        (pickle.dumps([1, 2, 3]), r"is not a CIFAR-10 python batch \(needs b'data' and b'labels'\)"),
        (pickle.dumps({b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]}), r"expected data \[N, 3072\]"),
        (pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0]}), "and N labels"),
        (pickle.dumps({b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [12]}), r"labels must be in 0\.\.9"),
        (pickle.dumps({b"data": "pixels", b"labels": [0]}), "b'data' must be uint8 values"),
    ],
)
def test_corrupt_batches_are_clear_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    directory = write_cifar(tmp_path)
    target = directory / "data_batch_2"
    if content is None:
        content = target.read_bytes()[: target.stat().st_size // 2]
    target.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as error:
        load_cifar10_task(directory)
    assert "data_batch_2" in str(error.value)
    assert "\n" not in str(error.value)


class _RunsCode:
    """Unpickling this object would create a directory: a data file must never get to do that."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))


def test_a_batch_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    directory = write_cifar(tmp_path / "data")
    marker = tmp_path / "ran"
    write_batch(directory / TEST_FILE, _RunsCode(marker), [0])
    with pytest.raises(DatasetError, match=r"refusing to load \w+\.mkdir"):
        load_cifar10_task(directory)
    assert not marker.exists()
