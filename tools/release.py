"""Prepare a release of one member: version, changelog, API check, release check, snapshot, tag name.

    uv run python tools/release.py prepare esper-kasmina --bump minor

1. The version: with ``--bump`` the last released version is bumped (``uv version``); without it, the
   version in pyproject.toml must already be ahead of the last release (it was bumped together with a breaking
   change, see tools/api_check.py). A breaking bump moves every dependent's range to the new series
   (``>=0.2,<0.3``) and relocks; a dependent that still works with the old series may widen it by hand.
2. The changelog: ``## Unreleased`` in the member's CHANGELOG.md must say what changed.
3. The API check: the version must allow every breaking change since the last release.
4. The release check of the member (tools/release_check.py): its wheel with the oldest and newest siblings.
5. Then, and only then: the changelog section gets the version and date, and the API snapshot
   ``releases/<version>.json`` is written. The commit that adds it is the release commit; tag it
   ``<member>-v<version>``.

Run from a clean checkout of main; review and commit what it changed. Exit status 0 when the release is ready.

    uv run python tools/release.py bump esper-leyline --bump minor

does step 1 alone, for a change that breaks the API between releases (tools/api_check.py asks for it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from api_check import check_member, write_snapshot
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from release_check import ReleaseCheck
from releasing.api import VALUE_CONTRACT_MEMBERS, compare, load_snapshot, load_source_api, minimum_version
from releasing.changelog import release_section, unreleased_entries
from releasing.wheels import CommandError, run
from releasing.workspace import ROOT, Member, WorkspaceError, load_members, member_named, tag_name

BUMPS = ("major", "minor", "patch")


def bumped(version: Version, bump: str) -> Version:
    major, minor, patch = version.major, version.minor, version.micro
    return {
        "major": Version(f"{major + 1}.0.0"),
        "minor": Version(f"{major}.{minor + 1}.0"),
        "patch": Version(f"{major}.{minor}.{patch + 1}"),
    }[bump]


def series_range(version: Version) -> str:
    """The range of versions compatible with ``version``: up to the next breaking one."""
    upper = f"0.{version.minor + 1}" if version.major == 0 else f"{version.major + 1}"
    lower = f"{version.major}.{version.minor}"
    return f">={lower},<{upper}"


def target_version(member: Member, bump: str | None) -> Version:
    last = member.last_release()
    if last is not None and member.version < last:
        raise WorkspaceError(f"version {member.version} is lower than the last release {last}")
    if bump is None:
        if last is not None and member.version == last:
            raise WorkspaceError(f"{member.version} is already released: choose --bump {'|'.join(BUMPS)}")
        return member.version
    if last is not None and member.version > last:
        raise WorkspaceError(
            f"version {member.version} is already ahead of the last release {last}: prepare it without --bump"
        )
    return bumped(member.version, bump)


def move_dependents(root: Path, member: Member, version: Version) -> list[str]:
    """Give every dependent whose range excludes ``version`` the new series' range; return what moved."""
    moved = []
    for dependent in load_members(root).values():
        pyproject = dependent.directory / "pyproject.toml"
        text = pyproject.read_text()
        for written in tomllib.loads(text)["project"].get("dependencies", []):
            requirement = Requirement(written)
            if canonicalize_name(requirement.name) != member.distribution or version in requirement.specifier:
                continue
            new = f"{member.distribution}{series_range(version)}"
            write_atomically(pyproject, text.replace(f'"{written}"', f'"{new}"', 1))
            moved.append(f"{dependent.distribution}: {written} -> {new}")
    return moved


def set_version(root: Path, member: Member, version: Version) -> list[str]:
    """Give the member ``version``, move the dependents' ranges that exclude it, relock; return what moved."""
    run(["uv", "version", "--quiet", "--package", member.distribution, str(version), "--frozen"], root)
    moved = move_dependents(root, member, version)
    run(["uv", "lock", "--quiet"], root)
    return moved


def bump(root: Path, name: str, kind: str) -> str:
    """Bump an unreleased member's version now (with a breaking change, say); the release comes later."""
    member = member_named(load_members(root), name)
    version = target_version(member, kind)
    moved = set_version(root, member, version)
    return "\n".join([f"{member.distribution}: {member.version} -> {version}", *(f"range moved: {m}" for m in moved)])


def write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def prepare(root: Path, name: str, bump: str | None, work: Path) -> str:
    """Prepare the release and return its summary; raises WorkspaceError or CommandError saying what to fix."""
    member = member_named(load_members(root), name)
    version = target_version(member, bump)
    changelog = member.directory / "CHANGELOG.md"
    if not unreleased_entries(changelog.read_text()):
        raise WorkspaceError(f"{changelog.relative_to(root)}: nothing under '## Unreleased'; say what changed")
    last = member.last_release()
    if last is not None:
        comparison = compare(
            load_snapshot(member.snapshot_path(last)),
            load_source_api(member),
            values=member.distribution in VALUE_CONTRACT_MEMBERS,
        )
        required = minimum_version(last, breaking=bool(comparison.breaking))
        if version < required:
            changes = "\n".join(f"    {line}" for line in comparison.breaking)
            raise WorkspaceError(
                f"API check: breaking changes since {last} need version >= {required}, not {version}"
                f" (--bump {'minor' if last.major == 0 else 'major'}):\n{changes}"
            )
    moved = set_version(root, member, version) if version != member.version else []
    member = member_named(load_members(root), name)
    verdict = check_member(member)
    if not verdict.ok:
        raise WorkspaceError(f"API check: {verdict.text}")
    report = ReleaseCheck(root, work).check(member)
    write_atomically(changelog, release_section(changelog.read_text(), version, datetime.now(UTC).date()))
    snapshot = write_snapshot(member)
    tag = tag_name(member.distribution, version)
    lines = [
        f"{member.distribution} {version} is ready: {verdict.text}",
        f"release check: {report}",
        *(f"range moved: {line}" for line in moved),
        f"Commit it (the commit that adds {snapshot.relative_to(root)} is the release commit), then tag it:",
        f"    git tag {tag}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this repository)")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser("prepare", help="prepare a release of one member")
    prepare_parser.add_argument("member", help="distribution name, e.g. esper-kasmina")
    prepare_parser.add_argument("--bump", choices=BUMPS, help="bump the last released version")
    bump_parser = commands.add_parser("bump", help="bump a member's version and its dependents' ranges now")
    bump_parser.add_argument("member", help="distribution name, e.g. esper-leyline")
    bump_parser.add_argument("--bump", choices=BUMPS, required=True, help="bump the last released version")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        try:
            if args.command == "bump":
                print(bump(args.root, args.member, args.bump))
            else:
                print(prepare(args.root, args.member, args.bump, Path(work)))
        except (WorkspaceError, CommandError) as error:
            print(f"release.py: error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
