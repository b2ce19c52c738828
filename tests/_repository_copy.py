"""A throwaway copy of the repository, as a fresh git repository, for tests that change or release things."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# An identity for the copy's commits: CI's machine may have none configured.
_IDENTITY = ["-c", "user.name=Esper tests", "-c", "user.email=tests@esper.invalid", "-c", "commit.gpgsign=false"]


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *_IDENTITY, *args], capture_output=True, text=True, check=True)
    return result.stdout


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def repository_copy(target: Path) -> Path:
    """The work tree's files (tracked and untracked, not ignored) in one commit of a new repository at
    ``target``. Only each member's last release is kept: its snapshot is added by that one commit, which holds
    that version; older releases could not be rebuilt from it."""
    files = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for releases in target.glob("packages/*/releases"):
        snapshots = sorted(releases.glob("*.json"), key=lambda path: Version(path.stem))
        for older in snapshots[:-1]:
            older.unlink()
    git(target, "init", "-q", "-b", "main")
    commit_all(target, "base")
    return target
