"""scikit-learn's 8x8 handwritten digits: ships inside scikit-learn, so the default task needs no download.

1,797 grayscale images, 10 classes, split once and for all into train / validation / test (70 / 15 / 15 %,
stratified by class, split seed 0): 1,259 / 269 / 269 images. Every run and every controller sees the same
three sets, whatever its run seed.
"""

from __future__ import annotations

from sklearn.datasets import load_digits

from esper.app.datasets.splits import DataSplit, standardized_task, stratified_split
from esper.simic.envs.task_data import TaskData

DIGITS_SPLIT_SEED = 0
DIGITS_VALIDATION_FRACTION = 0.15
DIGITS_TEST_FRACTION = 0.15
DIGITS_SPLIT = DataSplit(
    description="scikit-learn digits, stratified 70/15/15 % train/validation/test",
    seed=DIGITS_SPLIT_SEED,
    train=1259,
    validation=269,
    test=269,
    examples="images",
)


def load_digits_task() -> TaskData:
    bunch = load_digits()
    images = bunch.images.reshape(-1, 1, 8, 8) / 16.0
    labels = bunch.target
    train, val, test = stratified_split(labels, DIGITS_VALIDATION_FRACTION, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return standardized_task(
        (images[train], labels[train]), (images[val], labels[val]), (images[test], labels[test]), num_classes=10
    )
