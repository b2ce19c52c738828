"""A run's output directory: resolved config, JSONL event log, TensorBoard scalars, checkpoints, summary, plots.

Layout::

    config.json            the resolved run config and the code's git commit (written atomically)
    events.jsonl           one JSON object per line: epoch, episode, round/update events (append-only)
    tensorboard/           TensorBoard scalars (``tensorboard --logdir DIR/tensorboard``)
    checkpoints/latest.pt  the newest PPO checkpoint (written atomically after every update)
    checkpoints/best.pt    the PPO checkpoint whose argmax policy validated best (written atomically)
    results.json           the final numbers the summary was built from (written atomically)
    summary.md             tables and links to the plots
    plots/*.png

A PPO round is logged before its checkpoint is written, so the log is never behind the checkpoint. Reopening a
run at the checkpoint's round (``resume_from``) drops what the log holds of later rounds (they are trained again,
identically) and an incomplete last line (a crash or a full disk in mid-write), so new events start on a line of
their own; TensorBoard hides the scalars of the dropped rounds the same way.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from esper.app.code_version import code_version
from esper.app.console import warn
from esper.leyline import ConfigError
from esper.simic.atomic_files import remove_stale_temporaries, write_json_atomic, write_text_atomic


def default_run_dir(task: str, controller: str) -> Path:
    """The default name; ``RunDirectory(..., unique=True)`` adds a suffix if another run already took it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{controller}-{stamp}"


def _claim_unique(path: Path) -> Path:
    """Create ``path`` (or ``path-2``, ``path-3``, ...) with an exclusive mkdir: two runs started in the same
    second never share a directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = path, 1
    while True:
        try:
            candidate.mkdir()
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.name}-{number}")
            continue
        return candidate


def checkpoint_file(run_dir: Path) -> Path:
    """Where a PPO run keeps its newest checkpoint."""
    return run_dir / "checkpoints" / "latest.pt"


def best_checkpoint_file(run_dir: Path) -> Path:
    """Where a PPO run keeps the checkpoint whose deterministic validation scored best so far."""
    return run_dir / "checkpoints" / "best.pt"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The ``config.json`` of an existing run, read without touching anything else in the directory."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not an Esper run directory (no config.json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a run config")
    return data


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete event of a run's log; a line that is not a JSON object (cut off by a crash or a full disk)
    is skipped with a warning."""
    return [event for _, event in _parsed_lines(run_dir / "events.jsonl")]


def _parsed_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or not line.endswith("\n"):
                warn(f"{path} line {number} is incomplete or damaged (a crash in mid-write?); skipped")
                continue
            yield line, event


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    write_json_atomic(run_dir / "results.json", _jsonable(results))


def write_summary(run_dir: Path, markdown: str) -> None:
    write_text_atomic(run_dir / "summary.md", markdown)


def _jsonable(value: Any) -> Any:
    """NaN/inf are not JSON: they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class RunDirectory:
    """Owns the files of one run. ``resume_from=N`` reopens an existing run whose checkpoint holds N rounds and
    appends to its log; ``unique=True`` picks a free name next to ``path`` if it is taken (default names)."""

    def __init__(
        self, path: Path, *, resume_from: int | None = None, tensorboard: bool = True, unique: bool = False
    ) -> None:
        if resume_from is not None:
            if not (path / "config.json").is_file():
                raise ConfigError(f"{path} is not an Esper run directory (no config.json)")
        elif unique:
            path = _claim_unique(path)
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            what = "a non-empty directory" if path.is_dir() else "a file"
            raise ConfigError(f"output directory {path} already exists as {what}; pick another --out")
        self.path = path
        self.plots = path / "plots"
        self.plots.mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        if resume_from is not None:
            for directory in (path, path / "checkpoints"):
                for stale in remove_stale_temporaries(directory):
                    warn(f"removed {stale}, left by a write that was interrupted")
            self._keep_rounds_before(resume_from)
        self._events = (path / "events.jsonl").open("a", encoding="utf-8")
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when scalars are written

            self._writer = SummaryWriter(log_dir=str(path / "tensorboard"), purge_step=resume_from)

    def _keep_rounds_before(self, rounds: int) -> None:
        """Rewrite the log without its events of rounds ``>= rounds`` and without damaged lines (only if it holds
        any: an intact log is never rewritten)."""
        path = self.path / "events.jsonl"
        if not path.is_file():
            return
        raw = path.read_bytes()
        kept = [line for line, event in _parsed_lines(path) if not _round_at_least(event, rounds)]
        text = "".join(kept)
        if text.encode("utf-8") != raw:
            write_text_atomic(path, text)

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_file(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write_config(self, config: dict[str, Any]) -> None:
        """The config as given, plus ``code``: the commit of the code writing it (rewritten on a resume)."""
        write_json_atomic(self.config_path, _jsonable({**config, "code": code_version()}))

    def event(self, kind: str, **fields: Any) -> None:
        """Append one event line and flush it, so a crash loses at most the line being written."""
        self._events.write(json.dumps(_jsonable({"event": kind, **fields}), sort_keys=True) + "\n")
        self._events.flush()

    def scalars(self, step: int, values: dict[str, float | int | bool | None]) -> None:
        if self._writer is None:
            return
        for tag, value in values.items():
            if value is not None and not isinstance(value, bool) and math.isfinite(float(value)):
                self._writer.add_scalar(tag, float(value), step)
        self._writer.flush()

    def close(self) -> None:
        self._events.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _round_at_least(event: dict[str, Any], rounds: int) -> bool:
    index = event.get("round")
    return isinstance(index, int) and index >= rounds
