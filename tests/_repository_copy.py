"""A throwaway copy of the repository, as a fresh git repository, for tests that change or release things."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

from api_check import write_snapshot
from packaging.version import Version
from releasing.changelog import release_section, unreleased_entries
from releasing.workspace import load_members

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


def _release_pending_versions(root: Path) -> None:
    """Make the copy a just-released state: a member whose version is ahead of its last release, or whose changelog
    has unreleased entries, gets its current API as the snapshot of its current version (the only one kept) and an
    empty ``## Unreleased``. The copy's one commit holds every member's version, so it can be the release commit of
    each last release only when those versions agree; the tests then start from a release, whatever main has
    pending."""
    for member in load_members(root).values():
        last = member.last_release()
        changelog = member.directory / "CHANGELOG.md"
        if last == member.version and not unreleased_entries(changelog.read_text()):
            continue
        for snapshot in member.releases_dir.glob("*.json"):
            snapshot.unlink()
        write_snapshot(member)
        changelog.write_text(release_section(changelog.read_text(), member.version, date.today()))


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
    _release_pending_versions(target)
    git(target, "init", "-q", "-b", "main")
    commit_all(target, "base")
    return target
