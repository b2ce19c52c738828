"""CIFAR-10 from the standard "python version" batches in a directory the user names.

Expected files (as unpacked from ``cifar-10-python.tar.gz``): ``data_batch_1`` .. ``data_batch_5`` and
``test_batch``, each a pickled dict with ``b"data"`` (uint8 ``[10000, 3072]``, channel-major 32x32) and
``b"labels"``. The directory may be ``cifar-10-batches-py`` itself or its parent. Nothing is downloaded.

Splits: the last 5,000 images of ``data_batch_5`` are the validation set (what the controller and the reward see),
the other 45,000 training images are trained on, and ``test_batch`` (10,000 images) is the test set, evaluated once
at the end of every episode and only reported.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from esper.app.datasets.splits import DataSplit, standardized_task
from esper.leyline import ConfigError
from esper.simic.envs.task_data import TaskData

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
#: Images at the end of the last training batch held out as the validation set.
CIFAR10_VALIDATION_IMAGES = 5000
CIFAR10_SPLIT = DataSplit(
    description=(
        f"CIFAR-10: the last {CIFAR10_VALIDATION_IMAGES:,} images of {TRAIN_FILES[-1]} validate, {TEST_FILE} tests"
    ),
    seed=None,
    train=45_000,
    validation=CIFAR10_VALIDATION_IMAGES,
    test=10_000,
    examples="images",
)
_IMAGE_VALUES = 3 * 32 * 32
#: What a pickled numpy array needs: its reconstructor (module path of numpy 1 and of numpy 2), the array and
#: dtype types, and the codec protocol-2 pickles use for byte strings.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class DatasetError(ConfigError):
    """A dataset directory is missing, incomplete or malformed."""


def locate_cifar10(data_dir: Path) -> Path:
    """The directory holding the batch files, or a ``DatasetError`` that names what was expected where."""
    candidates = [data_dir, data_dir / "cifar-10-batches-py"]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return candidate
    if not data_dir.is_dir():
        raise DatasetError(f"CIFAR-10 directory {data_dir} does not exist (pass --data-dir)")
    searched = candidates[1] if candidates[1].is_dir() else data_dir
    missing = [name for name in (*TRAIN_FILES, TEST_FILE) if not (searched / name).is_file()]
    raise DatasetError(
        f"CIFAR-10 python batches not found in {data_dir} or {candidates[1]}: "
        f"{searched} lacks {', '.join(missing)} (unpack cifar-10-python.tar.gz there)"
    )


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must never be able to run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a CIFAR-10 batch holds arrays only)")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
    except Exception as error:  # a corrupt pickle fails in many ways (bad opcodes, sizes, codecs, arguments)
        raise DatasetError(f"cannot read CIFAR-10 batch {path}: {type(error).__name__}: {error}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DatasetError(f"{path} is not a CIFAR-10 python batch (needs b'data' and b'labels')")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise DatasetError(f"{path}: b'data' must be uint8 values and b'labels' integers: {error}") from None
    if data.ndim != 2 or data.shape[1] != _IMAGE_VALUES or data.shape[0] != labels.shape[0]:
        raise DatasetError(f"{path}: expected data [N, {_IMAGE_VALUES}] and N labels, got {data.shape}, {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels must be in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10_task(
    data_dir: Path, validation_images: int = CIFAR10_VALIDATION_IMAGES, train_limit: int | None = None
) -> TaskData:
    """Train on the five training batches minus the last ``validation_images`` of the fifth (the validation set),
    test on the test batch; ``train_limit`` keeps the first N training images."""
    directory = locate_cifar10(data_dir)
    parts = [_read_batch(directory / name) for name in TRAIN_FILES]
    test_images, test_labels = _read_batch(directory / TEST_FILE)
    last_images, last_labels = parts[-1]
    if not 0 < validation_images < len(last_labels):
        raise DatasetError(
            f"{directory / TRAIN_FILES[-1]} holds {len(last_labels)} images; the validation set takes its last "
            f"{validation_images} and training needs at least one more (a complete CIFAR-10 batch holds 10000)"
        )
    cut = len(last_labels) - validation_images
    parts[-1] = (last_images[:cut], last_labels[:cut])
    train_images = np.concatenate([images for images, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    if train_limit is not None:
        train_images, train_labels = train_images[:train_limit], train_labels[:train_limit]
    return standardized_task(
        (train_images / 255.0, train_labels),
        (last_images[cut:] / 255.0, last_labels[cut:]),
        (test_images / 255.0, test_labels),
        num_classes=10,
    )
