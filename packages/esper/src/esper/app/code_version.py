"""The code a run was produced with: the git commit of the checkout Esper runs from, and whether tracked files
differed from that commit. Every run's ``config.json`` records it, so a published figure names the code that made
it (docs/results/ pages cite it, and a suite test reruns a prefix of their training command at today's code)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

#: Where the package's source lives: an editable install inside a git checkout finds its commit from here.
_SOURCE = Path(__file__).resolve().parent


def code_version(source: Path = _SOURCE) -> dict[str, Any] | None:
    """``{"commit": sha, "modified": bool}`` for the git checkout holding ``source``; None outside a checkout
    (an installed wheel) or without git: a run never fails for want of version control."""
    commit = _git(source, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(source, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "modified": bool(status)}


def _git(source: Path, *arguments: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(source), *arguments], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
