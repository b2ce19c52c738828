"""`tools/release.py prepare` on a throwaway copy of the repository: it refuses what the policy forbids, then
releases esper-leyline with a breaking change as the next minor version; the copy then shows which sibling
versions the release check picks and that the resolver refuses a member whose range excludes the release."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from _repository_copy import commit_all, repository_copy
from packaging.version import Version
from releasing.compat import newest_set, oldest_set
from releasing.workspace import load_members

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.release,
    pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH"),
]


def prepare(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "tools/release.py"), "--root", str(root), "prepare", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)


def uv(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["uv", *args], cwd=root, capture_output=True, text=True, check=False, timeout=600)


def set_requirement(root: Path, member_dir: str, distribution: str, specifier: str) -> None:
    path = root / "packages" / member_dir / "pyproject.toml"
    text, count = re.subn(rf'"{distribution}[<>=][^"]*"', f'"{distribution}{specifier}"', path.read_text())
    assert count == 1
    path.write_text(text)


def test_prepare_enforces_the_policy_then_releases_a_breaking_leyline(tmp_path: Path) -> None:
    root = repository_copy(tmp_path / "repo")
    last = load_members(root)["esper-leyline"].last_release()
    assert last is not None
    next_minor = Version(f"0.{last.minor + 1}.0")
    leyline = root / "packages/leyline"

    refused = prepare(root, "esper-leyline")
    assert refused.returncode == 1
    assert f"{last} is already released: choose --bump" in refused.stderr

    protocols = leyline / "src/esper/leyline/protocols.py"
    protocols.write_text(protocols.read_text().replace("def start_episodes(", "def begin_episodes(", 1))
    refused = prepare(root, "esper-leyline", "--bump", "minor")
    assert refused.returncode == 1
    assert "packages/leyline/CHANGELOG.md: nothing under '## Unreleased'" in refused.stderr

    changelog = leyline / "CHANGELOG.md"
    entry = "- **Breaking:** `Controller.start_episodes` is now `begin_episodes`."
    changelog.write_text(changelog.read_text().replace("## Unreleased\n", f"## Unreleased\n\n{entry}\n", 1))
    refused = prepare(root, "esper-leyline", "--bump", "patch")
    assert refused.returncode == 1
    assert f"need version >= {next_minor}, not 0.{last.minor}.{last.micro + 1} (--bump minor)" in refused.stderr
    assert "Controller.start_episodes: Public object was removed" in refused.stderr
    assert load_members(root)["esper-leyline"].version == last  # nothing was changed

    released = prepare(root, "esper-leyline", "--bump", "minor")
    assert released.returncode == 0, released.stdout + released.stderr
    assert f"esper-leyline {next_minor} is ready" in released.stdout
    assert f"git tag esper-leyline-v{next_minor}" in released.stdout
    assert "release check: oldest = newest [no siblings]" in released.stdout
    members = load_members(root)
    assert members["esper-leyline"].version == next_minor
    assert members["esper-leyline"].snapshot_path(next_minor).exists()
    series = f">={next_minor.major}.{next_minor.minor},<0.{next_minor.minor + 1}"
    for name in ("esper-kasmina", "esper-tamiyo", "esper-simic", "esper"):
        (requirement,) = [r for r in members[name].requirements if r.name == "esper-leyline"]
        assert next_minor in requirement.specifier and last not in requirement.specifier, name
        assert f"range moved: {name}: " in released.stdout
    assert f'"esper-leyline{series}"' in (root / "packages/kasmina/pyproject.toml").read_text()
    lock = tomllib.loads((root / "uv.lock").read_text())
    assert {p["version"] for p in lock["package"] if p["name"] == "esper-leyline"} == {str(next_minor)}
    text = changelog.read_text()
    assert re.search(rf"## Unreleased\n\n## {next_minor} - \d{{4}}-\d\d-\d\d\n\n{re.escape(entry)}\n", text)
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools/api_check.py"), "--root", str(root), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout
    release_commit = commit_all(root, f"Release esper-leyline {next_minor}")

    # Which leyline a member is tested with follows its declared range.
    set_requirement(root, "kasmina", "esper-leyline", f">={last.major}.{last.minor},<0.{next_minor.minor + 1}")
    members = load_members(root)
    oldest, newest = oldest_set(root, members, "esper-kasmina"), newest_set(root, members, "esper-kasmina")
    assert oldest is not None
    assert oldest["esper-leyline"].version == last and oldest["esper-leyline"].release_commit != release_commit
    assert newest["esper-leyline"].version == next_minor and newest["esper-leyline"].release_commit == release_commit
    # simic's range on kasmina allows kasmina's release, but that release needs the old leyline: the oldest
    # consistent choice is the workspace's kasmina.
    simic_oldest = oldest_set(root, members, "esper-simic")
    assert simic_oldest is not None
    assert simic_oldest["esper-leyline"].version == next_minor
    assert simic_oldest["esper-kasmina"].release_commit is None

    # A kasmina that still declares the old series is refused by the resolver next to the new leyline.
    dist = tmp_path / "dist"
    for package in ("esper-leyline", "esper-kasmina"):
        assert uv(root, "build", "--quiet", "--wheel", "--package", package, "--out-dir", str(dist)).returncode == 0
    set_requirement(root, "kasmina", "esper-leyline", f">={last.major}.{last.minor},<0.{last.minor + 1}")
    assert (
        uv(
            root, "build", "--quiet", "--wheel", "--package", "esper-kasmina", "--out-dir", str(tmp_path / "old")
        ).returncode
        == 0
    )
    assert uv(tmp_path, "venv", "--quiet", "--python", sys.executable, str(tmp_path / "venv")).returncode == 0
    leyline_wheel = next(dist.glob(f"esper_leyline-{next_minor}-*.whl"))
    install = ["pip", "install", "--dry-run", "--python", str(tmp_path / "venv/bin/python"), str(leyline_wheel)]
    accepted = uv(tmp_path, *install, str(next(dist.glob("esper_kasmina-*.whl"))))
    assert accepted.returncode == 0, accepted.stderr
    refused_install = uv(tmp_path, *install, str(next((tmp_path / "old").glob("esper_kasmina-*.whl"))))
    assert refused_install.returncode != 0
    message = " ".join(refused_install.stderr.split())
    assert "No solution found" in message
    old_series = f"esper-leyline>=0.{last.minor},<0.{last.minor + 1}"
    assert f"esper-kasmina=={members['esper-kasmina'].version} depends on {old_series}" in message, message


def test_bump_moves_the_version_and_the_dependents_ranges_once(tmp_path: Path) -> None:
    root = repository_copy(tmp_path / "repo")
    last = load_members(root)["esper-kasmina"].last_release()
    assert last is not None
    command = [sys.executable, str(ROOT / "tools/release.py"), "--root", str(root), "bump", "esper-kasmina"]
    bumped = subprocess.run([*command, "--bump", "minor"], capture_output=True, text=True, check=False)
    assert bumped.returncode == 0, bumped.stderr
    next_minor = Version(f"0.{last.minor + 1}.0")
    members = load_members(root)
    assert members["esper-kasmina"].version == next_minor
    for dependent in ("esper-simic", "esper"):
        (requirement,) = [r for r in members[dependent].requirements if r.name == "esper-kasmina"]
        assert next_minor in requirement.specifier and last not in requirement.specifier
    (tamiyo_leyline,) = [r for r in members["esper-tamiyo"].requirements if r.name == "esper-leyline"]
    assert members["esper-leyline"].version in tamiyo_leyline.specifier  # untouched
    lock = tomllib.loads((root / "uv.lock").read_text())
    assert {p["version"] for p in lock["package"] if p["name"] == "esper-kasmina"} == {str(next_minor)}
    again = subprocess.run([*command, "--bump", "minor"], capture_output=True, text=True, check=False)
    assert again.returncode == 1
    assert f"version {next_minor} is already ahead of the last release {last}" in again.stderr
