"""One process trains a run directory at a time: an exclusive ``flock`` on the directory itself.

The kernel releases the lock when its holder exits, however it exits (even ``kill -9``), so a killed run never
leaves a stale lock behind, and no lock file is added to the directory.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from esper.leyline import ConfigError


class RunLock:
    """Held from construction until ``release`` (or the end of a ``with`` block)."""

    def __init__(self, run_dir: Path) -> None:
        try:
            self._descriptor: int | None = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise ConfigError(f"{run_dir} does not exist") from None
        except NotADirectoryError:
            raise ConfigError(f"{run_dir} is not a directory") from None
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise ConfigError(
                f"{run_dir} is being trained by another process; wait for it to finish or stop it first"
            ) from None

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the only descriptor drops the lock
            self._descriptor = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
