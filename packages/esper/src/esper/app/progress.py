"""A live progress bar on stderr for long runs (rounds, episodes), silent in quiet mode (CI, scripts)."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, description: str, *, quiet: bool, initial: int = 0) -> None:
        self._bar = (
            None
            if quiet
            else tqdm(total=total, desc=description, initial=initial, file=sys.stderr, dynamic_ncols=True, unit="it")
        )
        self.quiet = quiet

    def advance(self, count: int = 1, **status: float | str) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix({k: f"{v:.3g}" if isinstance(v, float) else v for k, v in status.items()}, refresh=False)
        self._bar.update(count)

    def note(self, message: str) -> None:
        """A line of text that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
