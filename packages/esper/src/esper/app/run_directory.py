"""A run's output directory: resolved config, JSONL event log, TensorBoard scalars, checkpoints, summary, plots.

Layout::

    config.json            the resolved run config (written atomically)
    events.jsonl           one JSON object per line: epoch, episode, round/update events (append-only)
    tensorboard/           TensorBoard scalars (``tensorboard --logdir DIR/tensorboard``)
    checkpoints/latest.pt  the newest PPO checkpoint (written atomically after every update)
    results.json           the final numbers the summary was built from (written atomically)
    summary.md             tables and links to the plots
    plots/*.png
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from esper.leyline import ConfigError
from esper.simic.atomic_files import write_json_atomic, write_text_atomic


def default_run_dir(task: str, controller: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{controller}-{stamp}"


def checkpoint_file(run_dir: Path) -> Path:
    """Where a PPO run keeps its newest checkpoint."""
    return run_dir / "checkpoints" / "latest.pt"


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
    """Owns the files of one run. ``resume=True`` reopens an existing run and appends to its log."""

    def __init__(self, path: Path, *, resume: bool = False, tensorboard: bool = True) -> None:
        if resume:
            if not (path / "config.json").is_file():
                raise ConfigError(f"{path} is not an Esper run directory (no config.json)")
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            what = "a non-empty directory" if path.is_dir() else "a file"
            raise ConfigError(f"output directory {path} already exists as {what}; pick another --out")
        self.path = path
        self.plots = path / "plots"
        self.plots.mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        self._events = (path / "events.jsonl").open("a", encoding="utf-8")
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, only when scalars are written

            self._writer = SummaryWriter(log_dir=str(path / "tensorboard"))

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_file(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write_config(self, config: dict[str, Any]) -> None:
        write_json_atomic(self.config_path, _jsonable(config))

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

    def write_results(self, results: dict[str, Any]) -> None:
        write_json_atomic(self.path / "results.json", _jsonable(results))

    def write_summary(self, markdown: str) -> None:
        write_text_atomic(self.path / "summary.md", markdown)

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
