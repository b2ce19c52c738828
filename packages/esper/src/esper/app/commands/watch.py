"""``esper watch RUN_DIR``: a live terminal view of a run, following its ``events.jsonl`` as it is written.

It only reads (the config and the event log), so it can watch a run another process is writing, over SSH or
anywhere a terminal is. ``q`` or Ctrl-C quits and gives the terminal back as it was. ``--once`` draws one frame
and exits (as does any output that is not a terminal), for scripts, tests and captures.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from rich.console import Console, RenderableType
from rich.live import Live

from esper.app.event_follower import EventFollower
from esper.app.run_directory import read_run_config
from esper.app.watch_state import RunState
from esper.app.watch_view import render
from esper.leyline import ConfigError

QUIT_KEYS = frozenset({"q", "Q"})


class KeySource(Protocol):
    def wait(self, timeout: float) -> str | None:
        """The key pressed within ``timeout`` seconds, or None."""
        ...


class TerminalKeys:
    """Single key presses from a terminal on stdin (cbreak mode: no Enter needed, Ctrl-C still interrupts);
    without a terminal on stdin it only waits."""

    def __init__(self) -> None:
        self._fd = sys.stdin.fileno() if sys.stdin.isatty() else None
        self._saved: list[Any] | None = None

    def __enter__(self) -> TerminalKeys:
        if self._fd is not None:
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def wait(self, timeout: float) -> str | None:
        if self._fd is None:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return os.read(self._fd, 1).decode("utf-8", errors="replace") if ready else None


class RunWatcher:
    """The run's state, kept up to date from its log."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.config = read_run_config(run_dir)
        log = run_dir / "events.jsonl"
        if not log.is_file():  # a run opens its log before it writes its config
            raise ConfigError(f"{run_dir} is not an Esper run directory (no events.jsonl beside its config.json)")
        self.follower = EventFollower(log)
        self.state = RunState.start(self.config)
        poll = self.follower.poll()
        if not poll.events and self.follower.damaged_lines:
            raise ConfigError(
                f"{log} is not an Esper event log ({self.follower.damaged_lines} line(s), none a JSON object)"
            )
        self._fold(poll.events)

    def update(self) -> None:
        poll = self.follower.poll()
        if poll.restarted:
            self.state = RunState.start(read_run_config(self.run_dir))
        self._fold(poll.events)

    def _fold(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.state.fold(event)

    def frame(self) -> RenderableType:
        try:
            started = (self.run_dir / "config.json").stat().st_mtime
        except FileNotFoundError:
            started = time.time()
        title = f"esper watch {self.run_dir}"
        return render(self.state, title, time.time() - started, self.follower.damaged_lines)


def follow(watcher: RunWatcher, console: Console, keys: KeySource, interval: float) -> int:
    """Redraw every ``interval`` seconds until a quit key or Ctrl-C; the screen is restored either way."""
    with Live(watcher.frame(), console=console, screen=True, auto_refresh=False, transient=True) as live:
        try:
            while keys.wait(interval) not in QUIT_KEYS:
                watcher.update()
                live.update(watcher.frame(), refresh=True)
        except KeyboardInterrupt:
            pass
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise ConfigError(f"--interval must be > 0 seconds, got {args.interval}")
    watcher = RunWatcher(args.run)
    console = Console()
    if args.once or not console.is_terminal:
        console.print(watcher.frame())
        return 0
    with TerminalKeys() as keys:
        return follow(watcher, console, keys, args.interval)
