"""Which sibling versions a member is tested with: the oldest its ranges allow, and the workspace's (newest).

A sibling's candidates are its released versions (each built from its release commit: the commit that added
its API snapshot, so no tag is needed) and its workspace version, unless the member's sources and pyproject.toml are
unchanged since its last release (then the release is the newest). Between releases the workspace version of
a member may equal its last release while its content differs (a dependency range moved with a breaking
release of a sibling); both are kept, the released one tried first.
"""

from __future__ import annotations

import itertools
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from releasing.workspace import Member, WorkspaceError, dependencies_of


@dataclass(frozen=True)
class Candidate:
    distribution: str
    version: Version
    release_commit: str | None  # None: the workspace's source
    requirements: dict[str, Requirement]

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}" + (" (workspace)" if self.release_commit is None else "")


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def release_commit(root: Path, member: Member, version: Version) -> str:
    """The commit that added the member's API snapshot of ``version``: the release's source."""
    snapshot = member.snapshot_path(version).relative_to(root)
    commits = git(root, "log", "--diff-filter=A", "--format=%H", "--", str(snapshot)).split()
    if not commits:
        raise WorkspaceError(
            f"no commit adds {snapshot}: the release {member.distribution} {version} cannot be rebuilt "
            "(a shallow clone? fetch the full history)"
        )
    return commits[-1]


def _requirements_at(
    root: Path, commit: str, member: Member, version: Version, siblings: set[str]
) -> dict[str, Requirement]:
    """The member's sibling ranges as released (its pyproject.toml at the release commit)."""
    pyproject = (member.directory / "pyproject.toml").relative_to(root)
    project = tomllib.loads(git(root, "show", f"{commit}:{pyproject}"))["project"]
    if Version(project["version"]) != version:
        raise WorkspaceError(f"{pyproject} at {commit[:12]} has version {project['version']}, not {version}")
    requirements = (Requirement(text) for text in project.get("dependencies", []))
    return {canonicalize_name(r.name): r for r in requirements if canonicalize_name(r.name) in siblings}


def candidates(root: Path, members: dict[str, Member], name: str) -> list[Candidate]:
    """Every version of ``name`` that can be installed, oldest first (a release before an equal workspace one)."""
    member = members[name]
    siblings = set(members)
    found = []
    last_commit: str | None = None
    for version in member.released_versions():
        last_commit = release_commit(root, member, version)
        requirements = _requirements_at(root, last_commit, member, version, siblings)
        found.append(Candidate(name, version, last_commit, requirements))
    if last_commit is None or found[-1].version != member.version or not _unchanged_since(root, member, last_commit):
        found.append(Candidate(name, member.version, None, member.sibling_requirements(siblings)))
    return found


def _unchanged_since(root: Path, member: Member, commit: str) -> bool:
    """Whether what the member's wheel is built from (its sources and pyproject.toml; its README and changelog
    only add words) is in the work tree exactly as in the release commit."""
    built_from = [str(member.directory / "src"), str(member.directory / "pyproject.toml")]
    command = ["git", "-C", str(root), "diff", "--quiet", commit, "--", *built_from]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def consistent(member: Member, chosen: dict[str, Candidate], siblings: set[str]) -> bool:
    """Whether every range declared by the member and by the chosen siblings holds for the chosen versions."""
    declared = [member.sibling_requirements(siblings), *(c.requirements for c in chosen.values())]
    return all(
        dependency in chosen and chosen[dependency].version in requirement.specifier
        for requirements in declared
        for dependency, requirement in requirements.items()
    )


def oldest_set(root: Path, members: dict[str, Member], name: str) -> dict[str, Candidate] | None:
    """The oldest consistent choice of every sibling ``name`` needs (the first sibling in dependency order is
    the most significant), or None when no choice satisfies every declared range."""
    needed = dependencies_of(members, name)
    options = [candidates(root, members, dependency) for dependency in needed]
    for combination in itertools.product(*options):
        chosen = dict(zip(needed, combination, strict=True))
        if consistent(members[name], chosen, set(members)):
            return chosen
    return None


def newest_set(root: Path, members: dict[str, Member], name: str) -> dict[str, Candidate]:
    """Every sibling ``name`` needs, as the workspace has it (its last release when nothing changed since)."""
    return {dependency: candidates(root, members, dependency)[-1] for dependency in dependencies_of(members, name)}
