"""The workspace's members as the release tools see them: versions, sibling ranges, releases, dependents.

Every tool takes the repository root as a parameter, so tests run them on a temporary copy of the repository.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent.parent


class WorkspaceError(Exception):
    """The workspace or a release record is not in the state a release tool needs; the message says why."""


@dataclass(frozen=True)
class Member:
    distribution: str
    import_name: str
    directory: Path
    version: Version
    requirements: tuple[Requirement, ...]
    test_requirements: tuple[str, ...]

    @property
    def releases_dir(self) -> Path:
        """One API snapshot per released version (``<version>.json``): the record that a version was released."""
        return self.directory / "releases"

    def snapshot_path(self, version: Version) -> Path:
        return self.releases_dir / f"{version}.json"

    def released_versions(self) -> list[Version]:
        return sorted(Version(path.stem) for path in self.releases_dir.glob("*.json"))

    def last_release(self) -> Version | None:
        versions = self.released_versions()
        return versions[-1] if versions else None

    def sibling_requirements(self, siblings: set[str]) -> dict[str, Requirement]:
        """This member's requirements on other workspace members, by distribution name."""
        return {
            canonicalize_name(req.name): req for req in self.requirements if canonicalize_name(req.name) in siblings
        }


def tag_name(distribution: str, version: Version) -> str:
    return f"{distribution}-v{version}"


def read_member(pyproject: Path) -> Member:
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    src = pyproject.parent / "src" / "esper"
    (package_dir,) = [p for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    groups = data.get("dependency-groups", {})
    return Member(
        distribution=canonicalize_name(project["name"]),
        import_name=f"esper.{package_dir.name}",
        directory=pyproject.parent,
        version=Version(project["version"]),
        requirements=tuple(Requirement(text) for text in project.get("dependencies", [])),
        test_requirements=tuple(groups.get("test", [])),
    )


def load_members(root: Path = ROOT) -> dict[str, Member]:
    """Every ``packages/*`` member by distribution name, dependencies before their dependents."""
    members = {m.distribution: m for m in map(read_member, sorted(root.glob("packages/*/pyproject.toml")))}
    ordered: dict[str, Member] = {}

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in members[name].sibling_requirements(set(members)):
            visit(dependency)
        ordered[name] = members[name]

    for name in members:
        visit(name)
    return ordered


def dependencies_of(members: dict[str, Member], name: str) -> list[str]:
    """Every member that ``name`` needs, directly or through another member, in dependency order."""
    needed: set[str] = set()
    frontier = [name]
    while frontier:
        for dependency in members[frontier.pop()].sibling_requirements(set(members)):
            if dependency not in needed:
                needed.add(dependency)
                frontier.append(dependency)
    return [m for m in members if m in needed]


def dependents_of(members: dict[str, Member], name: str) -> list[str]:
    """Every member that needs ``name``, directly or through another member, in dependency order."""
    return [m for m in members if name in dependencies_of(members, m)]


def member_named(members: dict[str, Member], name: str) -> Member:
    try:
        return members[canonicalize_name(name)]
    except KeyError:
        raise WorkspaceError(f"unknown member {name!r} (members: {', '.join(members)})") from None
