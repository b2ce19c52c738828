"""scikit-learn's 8x8 handwritten digits: ships inside scikit-learn, so the default task needs no download.

1,797 grayscale images, 10 classes. The split is fixed (20 % validation, split seed 0) so that every run and
every controller sees the same validation set.
"""

from __future__ import annotations

from sklearn.datasets import load_digits

from esper.app.datasets.splits import fixed_split, standardized_task
from esper.simic.task_data import TaskData

DIGITS_SPLIT_SEED = 0
DIGITS_VALIDATION_FRACTION = 0.2


def load_digits_task() -> TaskData:
    bunch = load_digits()
    images = bunch.images.reshape(-1, 1, 8, 8) / 16.0
    labels = bunch.target
    train, val = fixed_split(len(labels), DIGITS_VALIDATION_FRACTION, DIGITS_SPLIT_SEED)
    return standardized_task(images[train], labels[train], images[val], labels[val], num_classes=10)
