"""Every member builds into a wheel that installs and imports with only its declared dependencies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_release_check_passes_for_every_member(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "release_check.py"), "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {"esper", "esper-leyline", "esper-kasmina", "esper-tamiyo", "esper-simic"}
    assert all(status.startswith("ok") for status in lines.values()), result.stdout
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
    assert "unknown members: ['esper-nope']" in result.stderr
