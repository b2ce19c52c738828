"""A member that still declares the leyline series before leyline's last release is refused by the resolver
next to that release, instead of installing and breaking at run time (on a throwaway copy of the repository)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _repository_copy import repository_copy
from packaging.version import Version
from releasing.workspace import load_members

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.release,
    pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH"),
]


def uv(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["uv", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600)


def test_a_kasmina_declaring_the_previous_leyline_series_is_refused(tmp_path: Path) -> None:
    members = load_members(ROOT)
    released = members["esper-leyline"].released_versions()
    last = released[-1]
    previous = [v for v in released if (v.major, v.minor) < (last.major, last.minor)]
    if not previous:
        pytest.skip("esper-leyline has a single release series")
    old = previous[-1]
    old_series = f">={old.major}.{old.minor},<{last.major}.{last.minor}"
    root = repository_copy(tmp_path / "repo")
    dist, stale = tmp_path / "dist", tmp_path / "stale"
    for package in ("esper-leyline", "esper-kasmina"):
        assert uv(root, "build", "--quiet", "--wheel", "--package", package, "--out-dir", str(dist)).returncode == 0
    pyproject = root / "packages/kasmina/pyproject.toml"
    text, count = re.subn(r'"esper-leyline[<>=][^"]*"', f'"esper-leyline{old_series}"', pyproject.read_text())
    assert count == 1
    pyproject.write_text(text)
    assert (
        uv(root, "build", "--quiet", "--wheel", "--package", "esper-kasmina", "--out-dir", str(stale)).returncode == 0
    )
    assert uv(tmp_path, "venv", "--quiet", "--python", sys.executable, "venv").returncode == 0

    leyline = next(dist.glob("esper_leyline-*.whl"))
    assert Version(leyline.name.split("-")[1]) >= last
    install = ["pip", "install", "--dry-run", "--python", str(tmp_path / "venv/bin/python"), str(leyline)]
    accepted = uv(tmp_path, *install, str(next(dist.glob("esper_kasmina-*.whl"))))
    assert accepted.returncode == 0, accepted.stderr
    refused = uv(tmp_path, *install, str(next(stale.glob("esper_kasmina-*.whl"))))
    message = " ".join(refused.stderr.split())
    assert refused.returncode != 0
    assert "No solution found" in message
    assert f"depends on esper-leyline{old_series}" in message, message
