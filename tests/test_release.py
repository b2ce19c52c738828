"""The release check: every member's wheel carries what a user needs, installs with the oldest and the newest
sibling versions its ranges allow, and passes its own tests there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from releasing.workspace import load_members

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.release


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_release_check_passes_for_every_member(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "release_check.py"), "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=2400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    members = load_members(ROOT)
    assert set(lines) == set(members)
    for name, status in lines.items():
        assert status.startswith("ok ("), status
        runs = re.findall(r"(oldest = newest|oldest|newest) \[([^]]*)\]: [^;]*; [^;]*; (\d+) passed", status)
        assert runs, status
        assert {label for label, _, _ in runs} in ({"oldest = newest"}, {"oldest", "newest"}), status
        assert all(int(passed) > 0 for _, _, passed in runs), status
        for _, siblings, _ in runs:  # every sibling the member needs is named in each set
            needed = [req.name for req in members[name].requirements if req.name in members]
            assert all(dependency in siblings for dependency in needed), status
    assert "torch absent" in lines["esper-leyline"]
    assert "torch present" in lines["esper-kasmina"]


def test_release_check_rejects_unknown_members() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "release_check.py"), "--members", "esper-nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown member 'esper-nope'" in result.stderr
