"""Which members a change affects, and the tests to run for it: the changed members and every member that
depends on them (directly or through another member).

    uv run python tools/affected_members.py --member esper-kasmina       # a team's package and its dependents
    uv run python tools/affected_members.py --since main                 # what this branch changed
    uv run python tools/affected_members.py packages/leyline/src/esper/leyline/stages.py
    uv run pytest -n 2 $(uv run python tools/affected_members.py --since main --test-paths)

A file under ``packages/<dir>/`` belongs to that member. Documentation outside the packages (``*.md``,
``docs/``) affects none; any other file outside them (uv.lock, pyproject.toml, tools/, tests/, .ci/) affects
every member, and then the cross-package tests in ``tests/`` run too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path, PurePosixPath

from releasing.workspace import ROOT, Member, WorkspaceError, dependents_of, load_members, member_named


def owner_of(path: str, members: dict[str, Member], root: Path) -> str | None:
    """The member a repository path belongs to, ``"*"`` for a workspace-wide file, None for documentation."""
    parts = PurePosixPath(path).parts
    if len(parts) >= 2 and parts[0] == "packages":
        for member in members.values():
            if member.directory == root / "packages" / parts[1]:
                return member.distribution
    if parts and (parts[0] == "docs" or path.endswith(".md")):
        return None
    return "*"


def affected(members: dict[str, Member], changed: set[str]) -> list[str]:
    """The changed members and their dependents, in dependency order."""
    wanted = set(changed)
    for name in changed:
        wanted.update(dependents_of(members, name))
    return [name for name in members if name in wanted]


def changed_paths(root: Path, since: str) -> list[str]:
    """Files changed between ``since`` and the work tree (committed or not), and untracked ones."""

    def lines(*args: str) -> list[str]:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise WorkspaceError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.split()

    base = lines("merge-base", since, "HEAD")[0]
    return lines("diff", "--name-only", base) + lines("ls-files", "--others", "--exclude-standard")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this repository)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--member", help="a member's distribution name, e.g. esper-kasmina")
    source.add_argument("--since", help="a git ref: the files changed since its merge base with HEAD")
    source.add_argument("paths", nargs="*", default=[], help="changed files, relative to the repository root")
    parser.add_argument("--test-paths", action="store_true", help="print only the test directories, for pytest")
    args = parser.parse_args(argv)
    members = load_members(args.root)
    try:
        if args.member:
            changed = {member_named(members, args.member).distribution}
        else:
            paths = changed_paths(args.root, args.since) if args.since else args.paths
            owners = {owner_of(path, members, args.root) for path in paths} - {None}
            changed = set(members) if "*" in owners else {name for name in owners if name is not None}
    except WorkspaceError as error:
        parser.error(str(error))
    names = affected(members, changed)
    tests = [str(members[name].directory.relative_to(args.root) / "tests") for name in names]
    if changed == set(members) and not args.member:
        tests.append("tests")
    if args.test_paths:
        print(" ".join(tests))
    else:
        print("changed:", ", ".join(name for name in members if name in changed) or "none")
        print("affected:", ", ".join(names) or "none")
        print("run:", f"uv run pytest -n 2 {' '.join(tests)}" if tests else "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
