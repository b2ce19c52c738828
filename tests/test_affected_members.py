"""tools/affected_members.py: a change's members and their dependents, and the tests to run for them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _repository_copy import commit_all, git

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.subprocess


def affected(*args: str, root: Path = ROOT) -> list[str]:
    command = [sys.executable, str(ROOT / "tools/affected_members.py"), "--root", str(root), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()


def test_a_team_runs_its_package_and_every_dependent() -> None:
    assert affected("--member", "esper-kasmina") == [
        "changed: esper-kasmina",
        "affected: esper-kasmina, esper-simic, esper",
        "run: uv run pytest -n 2 packages/kasmina/tests packages/simic/tests packages/esper/tests",
    ]
    assert affected("--member", "esper-tamiyo", "--test-paths") == ["packages/tamiyo/tests packages/esper/tests"]
    assert affected("--member", "esper", "--test-paths") == ["packages/esper/tests"]


def test_changed_files_map_to_their_members() -> None:
    leyline = "packages/leyline/src/esper/leyline/stages.py"
    assert affected(leyline)[1] == "affected: esper-leyline, esper-kasmina, esper-tamiyo, esper-simic, esper"
    assert affected("packages/simic/README.md", "docs/releasing.md")[:2] == [
        "changed: esper-simic",
        "affected: esper-simic, esper",
    ]
    assert affected("docs/performance.md", "README.md")[2] == "run: nothing"


def test_a_workspace_wide_file_affects_every_member_and_the_cross_package_tests() -> None:
    paths = affected("uv.lock", "--test-paths")[0].split()
    assert paths[-1] == "tests"
    assert len(paths) == 6


def test_since_a_ref_reads_the_branch_and_the_work_tree(tmp_path: Path) -> None:
    for name, requires in (("leyline", []), ("kasmina", ["esper-leyline>=0.1,<0.2"])):
        member = tmp_path / "packages" / name
        (member / "src/esper" / name).mkdir(parents=True)
        (member / "src/esper" / name / "__init__.py").write_text("")
        dependencies = ", ".join(f'"{r}"' for r in requires)
        member.joinpath("pyproject.toml").write_text(
            f'[project]\nname = "esper-{name}"\nversion = "0.1.0"\ndependencies = [{dependencies}]\n'
        )
    git(tmp_path, "init", "-q", "-b", "main")
    commit_all(tmp_path, "base")
    git(tmp_path, "checkout", "-q", "-b", "work")
    (tmp_path / "packages/kasmina/src/esper/kasmina/new.py").write_text("")  # untracked
    assert affected("--since", "main", root=tmp_path)[1] == "affected: esper-kasmina"
    (tmp_path / "packages/leyline/src/esper/leyline/__init__.py").write_text("X = 1\n")
    commit_all(tmp_path, "a leyline change on the branch")
    assert affected("--since", "main", root=tmp_path)[1] == "affected: esper-leyline, esper-kasmina"


def test_unknown_member_is_one_error() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/affected_members.py"), "--member", "esper-nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown member 'esper-nope'" in result.stderr


@pytest.mark.parametrize("args", [["--member", "esper-leyline", "packages/x"], []])
def test_exactly_one_source_of_changes(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/affected_members.py"), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
