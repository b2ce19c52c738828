"""TinyStories (Eldan and Li, 2023) as byte-level language modelling, from a directory the user names.

Expected files, as distributed in the dataset's repository: ``TinyStories-train.txt`` and
``TinyStories-valid.txt``, UTF-8 text in which stories are separated by lines reading ``<|endoftext|>``.
Nothing is downloaded. The training file is about 1.9 GB, so only its beginning is read: whole stories, in file
order, until ``train_bytes`` are collected. From the validation file, the first stories up to ``eval_bytes``
validate and the stories right after them, up to ``eval_bytes`` again, test: contiguous blocks, nothing random.
Each story (stripped of surrounding whitespace) is followed by one NUL byte, which stands for ``<|endoftext|>``
(it never occurs in the text) so the model can learn where a story ends.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import closing
from pathlib import Path

from esper.app.datasets.byte_windows import LanguageModelData, language_model_data
from esper.app.datasets.cifar10 import DatasetError
from esper.app.datasets.pydoc_topics import DEFAULT_CONTEXT

TINYSTORIES_TRAIN_FILE = "TinyStories-train.txt"
TINYSTORIES_VALID_FILE = "TinyStories-valid.txt"
END_OF_TEXT = b"<|endoftext|>"
END_OF_STORY = b"\x00"
#: A story longer than this without a separator line means the file is not in the TinyStories format.
MAX_STORY_BYTES = 100_000
DEFAULT_TRAIN_BYTES = 2_000_000
DEFAULT_EVAL_BYTES = 200_000


def locate_tinystories(data_dir: Path) -> tuple[Path, Path]:
    """The training and validation files, or a ``DatasetError`` naming what is missing where."""
    if not data_dir.is_dir():
        raise DatasetError(f"TinyStories directory {data_dir} does not exist (pass --data-dir)")
    files = (data_dir / TINYSTORIES_TRAIN_FILE, data_dir / TINYSTORIES_VALID_FILE)
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise DatasetError(
            f"TinyStories directory {data_dir} lacks {' and '.join(missing)} "
            f"(put the dataset's {TINYSTORIES_TRAIN_FILE} and {TINYSTORIES_VALID_FILE} there)"
        )
    return files


def iter_stories(path: Path) -> Generator[bytes, None, None]:
    """The stories of one file in order, each stripped of surrounding whitespace; reads only as far as the
    caller consumes. A ``DatasetError`` names the file and line of anything not in the TinyStories format."""
    lines: list[bytes] = []
    size = 0
    separators = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DatasetError(f"{path} line {number} is not UTF-8 text ({error.reason})") from None
            if line.strip() == END_OF_TEXT:
                separators += 1
                story = b"".join(lines).strip()
                lines, size = [], 0
                if story:
                    yield story
                continue
            lines.append(line)
            size += len(line)
            if size > MAX_STORY_BYTES:
                raise DatasetError(
                    f"{path}: more than {MAX_STORY_BYTES:,} bytes without a line reading "
                    f"{END_OF_TEXT.decode()} by line {number}; TinyStories files separate stories with such lines"
                )
    if separators == 0:
        raise DatasetError(
            f"{path} has no line reading {END_OF_TEXT.decode()}; TinyStories files separate stories with such lines"
        )
    story = b"".join(lines).strip()
    if story:
        yield story


def take_stories(stories: Iterator[bytes], budget: int) -> bytes:
    """Whole stories from ``stories``, each followed by ``END_OF_STORY``, until at least ``budget`` bytes (or the
    stories run out)."""
    taken: list[bytes] = []
    size = 0
    while size < budget:
        story = next(stories, None)
        if story is None:
            break
        taken.append(story + END_OF_STORY)
        size += len(story) + 1
    return b"".join(taken)


def load_tinystories_task(
    data_dir: Path,
    context: int = DEFAULT_CONTEXT,
    train_bytes: int = DEFAULT_TRAIN_BYTES,
    eval_bytes: int = DEFAULT_EVAL_BYTES,
) -> LanguageModelData:
    if train_bytes < 1 or eval_bytes < 1:
        raise DatasetError(f"train_bytes and eval_bytes must be >= 1, got {train_bytes} and {eval_bytes}")
    train_path, valid_path = locate_tinystories(data_dir)
    with closing(iter_stories(train_path)) as stories:
        train = take_stories(stories, train_bytes)
    with closing(iter_stories(valid_path)) as stories:
        validation = take_stories(stories, eval_bytes)
        test = take_stories(stories, eval_bytes)
    description = (
        f"TinyStories: the first {len(train):,} bytes of whole stories of {TINYSTORIES_TRAIN_FILE} train; "
        f"of {TINYSTORIES_VALID_FILE}, the first {len(validation):,} bytes of whole stories validate and the next "
        f"{len(test):,} test; stories end with a NUL byte; non-overlapping windows of {context}"
    )
    return language_model_data((train, validation, test), context, description)
