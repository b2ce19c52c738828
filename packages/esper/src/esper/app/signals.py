"""SIGTERM (what ``timeout``, Slurm and ``docker stop`` send) stops a run the way Ctrl-C does: the exception
unwinds through the same cleanup (env workers closed, files flushed; checkpoints are atomic), and the command line
reports it in one line with exit status 143."""

from __future__ import annotations

import signal
from types import FrameType

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
SIGINT_EXIT_STATUS = 128 + signal.SIGINT


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM (a ``BaseException``, like
    ``KeyboardInterrupt``, so no ``except Exception`` swallows it)."""


def _raise_terminated(number: int, frame: FrameType | None) -> None:
    raise Terminated("terminated (SIGTERM)")


def stop_on_sigterm() -> None:
    """Install the SIGTERM handler; call once from the main thread at start-up."""
    signal.signal(signal.SIGTERM, _raise_terminated)
