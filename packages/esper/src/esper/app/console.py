"""Lines for the user on stderr that are not errors: warnings a run survives and notes that must show even in
``--quiet`` mode."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    print(f"esper: warning: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    print(f"esper: {message}", file=sys.stderr, flush=True)
