"""Building the wheels the release check installs: the workspace's, and each release's from its commit."""

from __future__ import annotations

import subprocess
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

from releasing.compat import Candidate
from releasing.workspace import Member


class CommandError(RuntimeError):
    """A command the release check ran failed; the message holds the command and the end of its output."""


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise CommandError(f"`{' '.join(command)}` failed ({result.returncode}):\n{output[-4000:]}")
    return result.stdout


class WheelBuilder:
    """Builds each wheel once per run: workspace wheels from the repository, released ones from a ``git
    archive`` of their release commit (no tag needed, only the commit, which every full clone has)."""

    def __init__(self, root: Path, work: Path) -> None:
        self._root = root
        self._work = work
        self._built: dict[tuple[str, str | None], Path] = {}

    def wheel(self, candidate: Candidate) -> Path:
        key = (candidate.distribution, candidate.release_commit)
        if key not in self._built:
            if candidate.release_commit is None:
                source, out = self._root, self._work / "wheels" / "workspace"
            else:
                source = self._source_at(candidate.release_commit)
                out = self._work / "wheels" / f"{candidate.distribution}-{candidate.version}"
            run(
                ["uv", "build", "--quiet", "--wheel", "--package", candidate.distribution, "--out-dir", str(out)],
                source,
            )
            stem = f"{candidate.distribution.replace('-', '_')}-{candidate.version}-"
            (self._built[key],) = [p for p in out.glob("*.whl") if p.name.startswith(stem)]
        return self._built[key]

    def _source_at(self, commit: str) -> Path:
        source = self._work / "sources" / commit[:12]
        if not source.exists():
            archive = self._work / "sources" / f"{commit[:12]}.tar"
            archive.parent.mkdir(parents=True, exist_ok=True)
            with archive.open("wb") as handle:
                subprocess.run(["git", "-C", str(self._root), "archive", commit], stdout=handle, check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(source, filter="data")
        return source


def metadata_problems(member: Member, wheel: Path, siblings: set[str]) -> list[str]:
    """What a user would miss in the wheel: long description, license, classifiers, py.typed, bounded ranges."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    problems = []
    if metadata.get("Description-Content-Type") != "text/markdown" or not str(metadata.get_payload()).strip():
        problems.append("no Markdown long description (README.md)")
    if not metadata.get("License-Expression") or not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("no license expression or LICENSE file")
    if "Programming Language :: Python :: 3.11" not in (metadata.get_all("Classifier") or []):
        problems.append("no classifier for the tested Python")
    if f"{member.import_name.replace('.', '/')}/py.typed" not in names:
        problems.append("no py.typed marker")
    for text in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        bounded = {spec.operator for spec in requirement.specifier} >= {">=", "<"}
        if (requirement.name in siblings or requirement.name == "torch") and not bounded:
            problems.append(f"{requirement.name} has no >=,< range: {text}")
    return problems
