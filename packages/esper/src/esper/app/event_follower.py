"""Follow a run's ``events.jsonl`` while it is being written: each poll returns the events appended since the last.

A run appends one line at a time and flushes it, so a reader may catch the last line half-written: such a line
(no newline yet) is held back until its newline arrives, never parsed early. A complete line that is not a JSON
object (a crash in mid-write, then a restart that began a new line) is counted and skipped. A log that got shorter
or was replaced (``--resume`` rewrites it without the rounds it will train again) is read again from its start, and
the poll says so, so the reader can forget what it had folded in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Poll:
    """What one poll found: the new complete events, and whether the log restarted (everything earlier is void)."""

    events: list[dict[str, Any]]
    restarted: bool


class EventFollower:
    """Incremental reader of one event log; ``damaged_lines`` counts the complete lines it had to skip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.damaged_lines = 0
        self._offset = 0
        self._partial = b""
        self._identity: tuple[int, int] | None = None

    def poll(self) -> Poll:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return Poll([], False)
        identity = (status.st_dev, status.st_ino)
        restarted = self._identity is not None and (identity != self._identity or status.st_size < self._offset)
        if restarted:
            self._offset, self._partial, self.damaged_lines = 0, b"", 0
        self._identity = identity
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # empty when the chunk ended with a newline, else the unfinished last line
        return Poll([event for event in map(self._parse, lines) if event is not None], restarted)

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        try:
            event = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            event = None
        if not isinstance(event, dict):
            self.damaged_lines += 1
            return None
        return event
