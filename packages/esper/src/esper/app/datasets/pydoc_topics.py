"""Byte-level language modelling on the standard library's ``pydoc_data.topics``: English text that ships with
Python itself, so the task needs no download.

The 79 topics (the help texts of statements, operators and types; 465,126 characters, 466,273 UTF-8 bytes under
the workspace's Python 3.11) are joined in sorted topic order, separated by a blank line, and cut into three
contiguous blocks: the first 80 % of the bytes train, the next 10 % validate, the last 10 % test. No window
straddles two splits, and the split depends on nothing random.
"""

from __future__ import annotations

from pydoc_data.topics import topics

from esper.app.datasets.byte_windows import LanguageModelData, language_model_data

PYDOC_TRAIN_FRACTION = 0.8
PYDOC_VALIDATION_FRACTION = 0.1
#: Context of the byte-level transformer presets.
DEFAULT_CONTEXT = 64


def pydoc_topics_text() -> bytes:
    """Every topic's text, in sorted topic order, joined by a blank line, as UTF-8."""
    return "\n\n".join(topics[name] for name in sorted(topics)).encode("utf-8")


def load_pydoc_topics_task(context: int = DEFAULT_CONTEXT) -> LanguageModelData:
    text = pydoc_topics_text()
    train_end = round(len(text) * PYDOC_TRAIN_FRACTION)
    validation_end = train_end + round(len(text) * PYDOC_VALIDATION_FRACTION)
    description = (
        f"pydoc_data.topics, {len(text):,} bytes in sorted topic order, contiguous blocks: "
        f"train bytes [0, {train_end:,}), validation [{train_end:,}, {validation_end:,}), "
        f"test [{validation_end:,}, {len(text):,}); non-overlapping windows of {context}"
    )
    parts = (text[:train_end], text[train_end:validation_end], text[validation_end:])
    return language_model_data(parts, context, description)
