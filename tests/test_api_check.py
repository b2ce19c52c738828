"""The API check catches breaking changes that come without the version bump the policy requires.

Each planted change goes into a temporary copy of the packages (sources, pyproject.toml and release
snapshots), never into the workspace.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from api_check import check_member, write_snapshot
from packaging.version import Version
from releasing.api import load_source_api, minimum_version, snapshot_text
from releasing.compat import release_commit
from releasing.workspace import load_members

ROOT = Path(__file__).resolve().parent.parent
LEYLINE = Path("packages/leyline")
pytestmark = pytest.mark.release


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The workspace's members without their tests: enough for the API check. In the copy, leyline's API as it
    is now is recorded as a release of its current version, so each planted change is judged on its own, whatever
    contract change is pending in the workspace (a pending breaking version would otherwise allow it)."""
    for pyproject in ROOT.glob("packages/*/pyproject.toml"):
        member = pyproject.parent
        target = tmp_path / member.relative_to(ROOT)
        shutil.copytree(member, target, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    write_snapshot(load_members(tmp_path)["esper-leyline"])
    return tmp_path


def plant(root: Path, relative: str, pattern: str, replacement: str | Callable[[re.Match[str]], str]) -> None:
    """Rewrite one line of a copied source file; fail if the line is not there (the source moved on)."""
    path = root / LEYLINE / "src/esper/leyline" / relative
    text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} not found in {path}"
    path.write_text(text)


def set_version(root: Path, version: str) -> None:
    path = root / LEYLINE / "pyproject.toml"
    path.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"', path.read_text(), count=1, flags=re.M))


def leyline_verdict(root: Path) -> tuple[bool, str]:
    verdict = check_member(load_members(root)["esper-leyline"])
    return verdict.ok, verdict.text


def test_every_member_passes_against_its_last_release() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/api_check.py"), "check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {"esper", "esper-leyline", "esper-kasmina", "esper-tamiyo", "esper-simic"}


def test_a_renamed_protocol_member_is_caught(copy: Path) -> None:
    plant(copy, "protocols.py", r"def start_episodes\(", "def begin_episodes(")
    ok, text = leyline_verdict(copy)
    assert not ok
    assert "esper.leyline.protocols.Controller.start_episodes: Public object was removed" in text
    assert re.search(r"need version >= 0\.\d+\.0, pyproject.toml has", text)


def test_a_renumbered_enum_member_is_caught(copy: Path) -> None:
    plant(copy, "stages.py", r"^    GERMINATED = 1$", "    GERMINATED = 9")
    ok, text = leyline_verdict(copy)
    assert not ok
    assert "esper.leyline.stages.SeedStage.GERMINATED: enum value changed: 1 -> 9" in text


def test_a_changed_contract_constant_and_a_new_required_field_are_caught(copy: Path) -> None:
    plant(copy, "constants.py", r"^MIN_PRUNE_AGE = 5$", "MIN_PRUNE_AGE = 6")
    plant(copy, "reports.py", r"^class SeedMetrics:\n(    \"\"\".*?\"\"\"\n)?", r"\g<0>\n    planted: int\n")
    ok, text = leyline_verdict(copy)
    assert not ok
    assert "esper.leyline.constants.MIN_PRUNE_AGE: value changed: 5 -> 6" in text
    assert "reports.SeedMetrics.__init__: Parameter was added as required: None -> planted" in text


def test_an_addition_is_not_breaking(copy: Path) -> None:
    plant(copy, "stages.py", r"^    RESETTING = 8$", "    RESETTING = 8\n    PLANTED = 99")
    plant(copy, "constants.py", r"^MIN_PRUNE_AGE = 5$", "MIN_PRUNE_AGE = 5\nPLANTED_CONSTANT = 3")
    # A new field with a default, after the last one (in the middle it would move positional parameters).
    plant(
        copy, "reports.py", r"(?s)^class SeedMetrics:\n.*?(?=\n\n\n)", lambda m: m.group(0) + "\n    planted: int = 0"
    )
    ok, text = leyline_verdict(copy)
    assert ok, text
    assert text.startswith("ok (no breaking change since")


def test_a_breaking_change_passes_once_the_version_has_the_required_bump(copy: Path) -> None:
    plant(copy, "stages.py", r"^    GERMINATED = 1$", "    GERMINATED = 9")
    last = load_members(copy)["esper-leyline"].last_release()
    assert last is not None and last.major == 0
    set_version(copy, f"0.{last.minor}.{last.micro + 1}")  # a patch bump is not enough in 0.x
    assert not leyline_verdict(copy)[0]
    set_version(copy, f"0.{last.minor + 1}.0")
    ok, text = leyline_verdict(copy)
    assert ok, text
    assert "1 breaking change(s)" in text


def test_only_exported_names_are_the_api_of_a_package_with_all(copy: Path) -> None:
    kasmina = copy / "packages/kasmina/src/esper/kasmina"
    init = kasmina / "__init__.py"
    init.write_text(init.read_text().replace('    "count_correct",\n', "", 1))
    last = load_members(copy)["esper-kasmina"].last_release()
    assert last is not None and last.major == 0
    pyproject = copy / "packages/kasmina/pyproject.toml"  # a patch version: one that allows no breaking change
    version = f'version = "0.{last.minor}.{last.micro + 1}"'
    pyproject.write_text(re.sub(r'^version = ".*"$', version, pyproject.read_text(), count=1, flags=re.M))
    members = load_members(copy)
    verdict = check_member(members["esper-kasmina"])
    assert not verdict.ok
    assert "esper.kasmina.count_correct: removed from __all__" in verdict.text


def test_a_version_below_the_last_release_fails(copy: Path) -> None:
    set_version(copy, "0.0.1")
    ok, text = leyline_verdict(copy)
    assert not ok
    assert "is lower than the last release" in text


@pytest.mark.parametrize(
    ("last", "breaking", "expected"),
    [("0.1.0", True, "0.2.0"), ("0.1.3", False, "0.1.3"), ("1.4.2", True, "2.0.0"), ("1.4.2", False, "1.4.2")],
)
def test_minimum_version(last: str, breaking: bool, expected: str) -> None:
    assert minimum_version(Version(last), breaking=breaking) == Version(expected)


@pytest.mark.parametrize("name", ["esper-leyline", "esper-kasmina", "esper-tamiyo", "esper-simic", "esper"])
def test_the_last_release_snapshot_is_the_api_of_its_release_commit(name: str, tmp_path: Path) -> None:
    """A snapshot taken before a rebase would describe another API than the release it records."""
    member = load_members(ROOT)[name]
    last = member.last_release()
    assert last is not None
    commit = release_commit(ROOT, member, last)
    source = member.directory.relative_to(ROOT) / "src"
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, str(source)], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    released = replace(member, directory=tmp_path / member.directory.relative_to(ROOT))
    assert snapshot_text(load_source_api(released)) == member.snapshot_path(last).read_text()
