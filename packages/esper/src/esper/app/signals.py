"""SIGTERM (what ``timeout``, Slurm and ``docker stop`` send) stops a run the way Ctrl-C does: the exception
unwinds through the same cleanup (env workers closed, files flushed; checkpoints are atomic), and the command line
reports it in one line with exit status 143."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
SIGINT_EXIT_STATUS = 128 + signal.SIGINT


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM (a ``BaseException``, like
    ``KeyboardInterrupt``, so no ``except Exception`` swallows it)."""


def _raise_terminated(number: int, frame: FrameType | None) -> None:
    raise Terminated("terminated (SIGTERM)")


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` inside the block (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
