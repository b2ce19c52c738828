"""Write files so that a crash never leaves a half-written file in place: temporary file, fsync, rename.

The temporary file is created with mode 0666 filtered by the process umask, so a finished file has the same
permissions as any other file the run writes. A process killed during a write leaves its temporary file behind
(``.NAME.<random>.tmp``); ``remove_stale_temporaries`` deletes them when the next process owns the directory.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

_TEMPORARY_SUFFIX = ".tmp"


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TEMPORARY_SUFFIX}")


def _replace_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory``; the caller must own the directory (no
    other process may be writing there). Returns what was removed."""
    removed = []
    for candidate in directory.glob(f".*{_TEMPORARY_SUFFIX}"):
        name = candidate.name.removesuffix(_TEMPORARY_SUFFIX)
        stem, _, token = name.rpartition(".")
        if stem and len(token) == 12 and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def write_bytes_atomic(path: Path, data: bytes) -> None:
    _replace_atomically(path, lambda handle: handle.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def torch_save_atomic(path: Path, payload: Any) -> None:
    """Serialized in memory first: a failed file write (full disk) then surfaces as the ``OSError`` it is, not
    as torch's stream-writer error."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())
