"""Byte-level text data: windows with next-byte targets, the embedded pydoc topics corpus split into contiguous
blocks, and TinyStories read from files written here in the dataset's real format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.app.datasets import tinystories
from esper.app.datasets.byte_windows import BYTE_VOCAB_SIZE, byte_windows
from esper.app.datasets.cifar10 import DatasetError
from esper.app.datasets.pydoc_topics import load_pydoc_topics_task, pydoc_topics_text
from esper.app.datasets.tinystories import (
    TINYSTORIES_TRAIN_FILE,
    TINYSTORIES_VALID_FILE,
    load_tinystories_task,
)


def _bytes_of(inputs: torch.Tensor, targets: torch.Tensor) -> bytes:
    """The contiguous text the windows cover: every input, then the last target."""
    flat = torch.cat([inputs.flatten(), targets.flatten()[-1:]])
    return bytes(flat.to(torch.uint8).tolist())


def test_windows_are_contiguous_and_targets_are_the_next_byte() -> None:
    data = bytes(range(40)) + "é".encode()
    windows = byte_windows(data, 8, "train")
    assert windows.inputs.dtype == windows.targets.dtype == torch.int64
    assert windows.inputs.shape == windows.targets.shape == (5, 8)
    assert torch.equal(windows.targets[:, :-1], windows.inputs[:, 1:])
    assert torch.equal(windows.targets[:-1, -1], windows.inputs[1:, 0])
    assert _bytes_of(windows.inputs, windows.targets) == data[:41]  # the 1-byte tail is dropped
    assert int(windows.inputs.max()) < BYTE_VOCAB_SIZE


def test_too_little_text_for_a_window_names_the_split() -> None:
    with pytest.raises(DatasetError, match="the test split holds 8 bytes: too few for one window of 8"):
        byte_windows(b"12345678", 8, "test")


def test_pydoc_topics_split_into_contiguous_blocks() -> None:
    text = pydoc_topics_text()
    assert len(text) > 400_000
    data = load_pydoc_topics_task(context=64)
    assert (data.vocab_size, data.context) == (256, 64)
    train_end = round(len(text) * 0.8)
    validation_end = train_end + round(len(text) * 0.1)
    assert _bytes_of(data.train.inputs, data.train.targets) == text[: data.train.inputs.numel() + 1]
    assert data.train.inputs.numel() + 1 <= train_end
    validation = _bytes_of(data.validation.inputs, data.validation.targets)
    assert validation == text[train_end : train_end + len(validation)]
    assert train_end + len(validation) <= validation_end
    test = _bytes_of(data.test.inputs, data.test.targets)
    assert test == text[validation_end : validation_end + len(test)]
    assert (data.split.train, data.split.validation, data.split.test) == (
        (train_end - 1) // 64,
        (validation_end - train_end - 1) // 64,
        (len(text) - validation_end - 1) // 64,
    )
    assert data.split.seed is None
    assert f"train bytes [0, {train_end:,})" in data.split.description
    again = load_pydoc_topics_task(context=64)
    assert torch.equal(again.test.targets, data.test.targets)


STORIES = [
    "Once upon a time, there was a little cat named Tom.\nTom liked to play in the sun.",
    'Lily had a red ball. "Look!" she said. Her mom smiled.',
    "Ben saw a big tree. He climbed it and saw the café by the sea.",
    "The dog ran fast. It was a happy day.",
    "Sue and Max built a tower of blocks. It fell down, and they laughed.",
]


def _write(path: Path, stories: list[str]) -> None:
    """The real layout: story text, then a line reading <|endoftext|>, between consecutive stories."""
    path.write_text("\n<|endoftext|>\n".join(stories) + "\n", encoding="utf-8")


@pytest.fixture
def stories_dir(tmp_path: Path) -> Path:
    _write(tmp_path / TINYSTORIES_TRAIN_FILE, STORIES)
    _write(tmp_path / TINYSTORIES_VALID_FILE, STORIES[::-1])
    return tmp_path


def test_tinystories_reads_whole_stories_up_to_the_budgets(stories_dir: Path) -> None:
    data = load_tinystories_task(stories_dir, context=8, train_bytes=100, eval_bytes=60)
    first_two = b"".join(story.encode() + b"\x00" for story in STORIES[:2])
    assert len(STORIES[0].encode()) + 1 < 100 <= len(first_two)
    assert _bytes_of(data.train.inputs, data.train.targets) == first_two[: data.train.inputs.numel() + 1]
    assert data.split.description.startswith(f"TinyStories: the first {len(first_two):,} bytes")
    reversed_stories = [story.encode() + b"\x00" for story in STORIES[::-1]]
    validation = _bytes_of(data.validation.inputs, data.validation.targets)
    assert validation == reversed_stories[0][: len(validation)]  # one story reaches 60 bytes
    test = _bytes_of(data.test.inputs, data.test.targets)
    after = b"".join(reversed_stories[1:3])  # the test block starts right after it: 38 bytes, then one more story
    assert len(reversed_stories[1]) < 60 <= len(after)
    assert test == after[: len(test)] and len(test) > len(reversed_stories[1])
    assert data.vocab_size == 256
    assert data.split.train == data.train.inputs.shape[0]


def test_the_training_file_is_read_only_as_far_as_needed(stories_dir: Path) -> None:
    train = stories_dir / TINYSTORIES_TRAIN_FILE
    train.write_bytes(train.read_bytes() + b"<|endoftext|>\n\xff\xfe broken\n")
    data = load_tinystories_task(stories_dir, context=8, train_bytes=50, eval_bytes=60)
    assert data.split.train > 0
    with pytest.raises(DatasetError, match=rf"{TINYSTORIES_TRAIN_FILE} line 12 is not UTF-8 text"):
        load_tinystories_task(stories_dir, context=8, train_bytes=10_000, eval_bytes=60)


def test_a_missing_directory_or_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_tinystories_task(tmp_path / "absent")
    _write(tmp_path / TINYSTORIES_TRAIN_FILE, STORIES)
    with pytest.raises(DatasetError, match=f"lacks {TINYSTORIES_VALID_FILE} "):
        load_tinystories_task(tmp_path)


def test_a_file_without_separators_is_refused(stories_dir: Path) -> None:
    (stories_dir / TINYSTORIES_VALID_FILE).write_text("\n\n".join(STORIES), encoding="utf-8")
    with pytest.raises(DatasetError, match=rf"{TINYSTORIES_VALID_FILE} has no line reading <\|endoftext\|>"):
        load_tinystories_task(stories_dir, context=8, train_bytes=50, eval_bytes=60)


def test_an_overlong_story_is_refused_without_reading_on(stories_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tinystories, "MAX_STORY_BYTES", 80)
    (stories_dir / TINYSTORIES_TRAIN_FILE).write_text("word " * 100 + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="more than 80 bytes without a line reading <\\|endoftext\\|> by line 1"):
        load_tinystories_task(stories_dir, context=8)


def test_too_little_validation_text_for_a_test_split_is_named(stories_dir: Path) -> None:
    _write(stories_dir / TINYSTORIES_VALID_FILE, STORIES[:2])
    with pytest.raises(DatasetError, match="the test split holds 0 bytes"):
        load_tinystories_task(stories_dir, context=8, train_bytes=50, eval_bytes=200)


def test_bad_budgets_are_refused(stories_dir: Path) -> None:
    with pytest.raises(DatasetError, match="train_bytes and eval_bytes must be >= 1, got 0 and 60"):
        load_tinystories_task(stories_dir, train_bytes=0, eval_bytes=60)


def test_fewer_validation_windows_keep_the_first_ones_and_say_so() -> None:
    data = load_pydoc_topics_task(context=64)
    fewer = data.with_validation_windows(10)
    assert torch.equal(fewer.validation.inputs, data.validation.inputs[:10])
    assert torch.equal(fewer.validation.targets, data.validation.targets[:10])
    assert fewer.train is data.train and fewer.test is data.test
    assert fewer.split.validation == 10 and fewer.split.train == data.split.train
    assert fewer.split.description.endswith("; validation: its first 10 windows")
    assert data.with_validation_windows(10**6).split.validation == data.split.validation
    with pytest.raises(DatasetError, match="need at least one validation window, got 0"):
        data.with_validation_windows(0)
