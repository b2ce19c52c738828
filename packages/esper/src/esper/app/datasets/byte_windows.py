"""Byte-level language-modelling data: text as UTF-8 bytes, cut into fixed windows with next-byte targets.

Bytes rather than characters: the vocabulary is the same 256 symbols for every corpus and every split (nothing
to build from the training text, no unknown symbol in validation or test, nothing to store beside a
checkpoint), and any text, TinyStories' occasional non-ASCII characters included, encodes without loss. On
mostly-ASCII English a byte is a character, so sequences are hardly longer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from esper.app.datasets.cifar10 import DatasetError
from esper.app.datasets.splits import DataSplit, LoadedTask
from esper.simic.envs.task_data import TaskData

BYTE_VOCAB_SIZE = 256


@dataclass(frozen=True)
class TokenWindows:
    """``inputs`` [N, context] int64 byte ids; ``targets`` [N, context] int64, the byte after each input position
    (``targets[:, t] == inputs[:, t + 1]`` inside a window)."""

    inputs: torch.Tensor
    targets: torch.Tensor


@dataclass(frozen=True)
class LanguageModelData:
    """Train / validation / test windows of one corpus, and what a run records about them."""

    train: TokenWindows
    validation: TokenWindows
    test: TokenWindows
    vocab_size: int
    context: int
    split: DataSplit

    def with_validation_windows(self, count: int) -> LanguageModelData:
        """Only the first ``count`` validation windows (a contiguous block; all of them if there are fewer).
        Validation runs every epoch, once per counterfactual configuration, so its size sets much of an epoch's
        cost; the test split, evaluated once per episode, keeps every window."""
        if count < 1:
            raise DatasetError(f"need at least one validation window, got {count}")
        kept = min(count, self.validation.inputs.shape[0])
        validation = TokenWindows(self.validation.inputs[:kept], self.validation.targets[:kept])
        split = dataclasses.replace(
            self.split,
            description=f"{self.split.description}; validation: its first {kept} windows",
            validation=kept,
        )
        return dataclasses.replace(self, validation=validation, split=split)

    def loaded(self) -> LoadedTask:
        """The windows as the environments take them (inputs and targets [N, context], ``num_classes`` the
        vocabulary), with their split."""
        task = TaskData(
            self.train.inputs,
            self.train.targets,
            self.validation.inputs,
            self.validation.targets,
            self.test.inputs,
            self.test.targets,
            num_classes=self.vocab_size,
        )
        return LoadedTask(task, self.split)


def byte_windows(data: bytes, context: int, split_name: str) -> TokenWindows:
    """Non-overlapping windows: window i reads bytes [i C, (i + 1) C) and predicts bytes [i C + 1, (i + 1) C + 1),
    so every byte but the first is a target exactly once; a tail shorter than a window is dropped."""
    if context < 1:
        raise DatasetError(f"context must be >= 1, got {context}")
    count = (len(data) - 1) // context
    if count < 1:
        raise DatasetError(
            f"the {split_name} split holds {len(data)} bytes: too few for one window of {context} (+1) bytes"
        )
    values = torch.frombuffer(bytearray(data[: count * context + 1]), dtype=torch.uint8).to(torch.int64)
    return TokenWindows(values[:-1].view(count, context), values[1:].view(count, context))


def language_model_data(parts: tuple[bytes, bytes, bytes], context: int, description: str) -> LanguageModelData:
    """Windows of the train, validation and test bytes; the split records the window count of each."""
    train, validation, test = (
        byte_windows(part, context, name) for part, name in zip(parts, ("train", "validation", "test"), strict=True)
    )
    split = DataSplit(
        description=description,
        seed=None,
        train=train.inputs.shape[0],
        validation=validation.inputs.shape[0],
        test=test.inputs.shape[0],
        examples=f"windows of {context} bytes",
    )
    return LanguageModelData(train, validation, test, BYTE_VOCAB_SIZE, context, split)
