"""Fail when a member's public API breaks without the version bump the release policy requires.

For every member with a release, compare its API (griffe, see ``releasing/api.py``) with the snapshot of its
last release, ``packages/<member>/releases/<version>.json``. A breaking change needs the version in its
``pyproject.toml`` raised to the next breaking version (0.x: the next minor; from 1.0: the next major), see
docs/releasing.md. ``snapshot`` writes the snapshot of the current API (``tools/release.py prepare`` calls it).

Usage: ``uv run python tools/api_check.py [--root DIR] check [--members a,b]``
       ``uv run python tools/api_check.py [--root DIR] snapshot MEMBER``
Exit status 0 when every member checked passed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from releasing.api import (
    VALUE_CONTRACT_MEMBERS,
    compare,
    load_snapshot,
    load_source_api,
    minimum_version,
    snapshot_text,
)
from releasing.workspace import ROOT, Member, WorkspaceError, load_members, member_named


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str


def check_member(member: Member) -> Verdict:
    """Compare the member's source with its last release and say whether its version allows the difference."""
    last = member.last_release()
    if last is None:
        return Verdict(True, f"ok (no release yet; version {member.version})")
    if member.version < last:
        return Verdict(False, f"FAILED: version {member.version} is lower than the last release {last}")
    comparison = compare(
        load_snapshot(member.snapshot_path(last)),
        load_source_api(member),
        values=member.distribution in VALUE_CONTRACT_MEMBERS,
    )
    required = minimum_version(last, breaking=bool(comparison.breaking))
    if member.version >= required:
        changes = f"{len(comparison.breaking)} breaking change(s)" if comparison.breaking else "no breaking change"
        return Verdict(True, f"ok ({changes} since {last}; version {member.version})")
    lines = [
        f"FAILED: {len(comparison.breaking)} breaking change(s) since release {last} need version >= {required}, "
        f"pyproject.toml has {member.version}. Bump it with `uv run python tools/release.py bump "
        f"{member.distribution} --bump {'minor' if last.major == 0 else 'major'}` (it moves the dependents' ranges "
        "too), or keep the old API:",
        *(f"    {line}" for line in comparison.breaking),
    ]
    return Verdict(False, "\n".join(lines))


def write_snapshot(member: Member) -> Path:
    """Write the current API as the snapshot of the member's current version (atomically)."""
    path = member.snapshot_path(member.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(snapshot_text(load_source_api(member)))
    os.replace(handle.name, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this repository)")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="compare every member (or --members) with its last release")
    check.add_argument("--members", help="comma-separated distribution names (default: all)")
    snapshot = commands.add_parser("snapshot", help="write the snapshot of a member's current version")
    snapshot.add_argument("member")
    args = parser.parse_args(argv)
    members = load_members(args.root)
    try:
        if args.command == "snapshot":
            print(write_snapshot(member_named(members, args.member)))
            return 0
        names = args.members.split(",") if args.members else list(members)
        chosen = [member_named(members, name) for name in names]
    except WorkspaceError as error:
        parser.error(str(error))
    failures = 0
    for member in chosen:
        verdict = check_member(member)
        failures += not verdict.ok
        print(f"{member.distribution}: {verdict.text}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
