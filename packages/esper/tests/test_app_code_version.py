"""A run records the code that made it: the commit of the checkout, whether tracked files differ from it, and
nothing (rather than a failure) outside a checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from esper.app.code_version import code_version
from esper.app.run_directory import RunDirectory, read_run_config

pytestmark = [pytest.mark.subprocess, pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")]


def _git(repo: Path, *arguments: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "src" / "module.py").write_text("x = 1\n")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return repo


def test_a_clean_checkout_gives_its_commit(repo: Path) -> None:
    assert code_version(repo / "src") == {"commit": _git(repo, "rev-parse", "HEAD"), "modified": False}


def test_a_changed_tracked_file_is_reported_and_an_untracked_one_is_not(repo: Path) -> None:
    (repo / "src" / "notes.txt").write_text("untracked\n")
    assert code_version(repo / "src") == {"commit": _git(repo, "rev-parse", "HEAD"), "modified": False}
    (repo / "src" / "module.py").write_text("x = 2\n")
    assert code_version(repo / "src") == {"commit": _git(repo, "rev-parse", "HEAD"), "modified": True}


def test_outside_a_checkout_there_is_no_version(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    assert code_version(outside) is None


def test_every_run_config_names_the_code_of_this_checkout(tmp_path: Path) -> None:
    with RunDirectory(tmp_path / "run", tensorboard=False) as directory:
        directory.write_config({"task": "digits"})
    # In the repository this is the checkout's commit; where the package is installed from a wheel, None.
    assert read_run_config(tmp_path / "run")["code"] == code_version()
