"""Prove each workspace member can be released on its own.

For every member: build its wheel with ``uv build``, create a fresh virtual environment, install the wheel with
only its declared dependencies (sibling members come from the wheels just built, everything else from PyPI),
then import every module of the package. A missing dependency declaration fails the import. For
``esper-leyline`` it also checks that torch is absent from the environment: the contracts must not need it.

Usage: ``uv run python tools/release_check.py [--members esper-leyline,esper-kasmina] [--work-dir DIR]``
Exit status 0 when every member passed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the fresh venv: import every module of the member's package, report whether torch exists.
_IMPORT_ALL = """
import importlib, importlib.util, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [sys.argv[1]] + [m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")]
for name in names:
    importlib.import_module(name)
print(len(names), "modules imported;", "torch present" if importlib.util.find_spec("torch") else "torch absent")
"""


@dataclass(frozen=True)
class Member:
    distribution: str
    import_name: str
    directory: Path


def workspace_members() -> list[Member]:
    """Every ``packages/*`` member, with the import name of its single ``esper.*`` package."""
    members = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        src = pyproject.parent / "src" / "esper"
        (package_dir,) = [p for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
        members.append(Member(project["name"], f"esper.{package_dir.name}", pyproject.parent))
    return members


def _run(command: list[str], cwd: Path = ROOT) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    return result.stdout


def build_wheels(members: list[Member], dist: Path) -> None:
    for member in members:
        _run(["uv", "build", "--wheel", "--package", member.distribution, "--out-dir", str(dist)])


def check_member(member: Member, dist: Path, work: Path) -> str:
    """Install one member's wheel into a fresh venv and import it; return the import report."""
    venv = work / f"venv-{member.distribution}"
    _run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    wheel = next(dist.glob(f"{member.distribution.replace('-', '_')}-*.whl"))
    _run(["uv", "pip", "install", "--quiet", "--python", str(python), "--find-links", str(dist), str(wheel)])
    report = _run([str(python), "-c", _IMPORT_ALL, member.import_name]).strip()
    if member.distribution == "esper-leyline" and "torch absent" not in report:
        raise RuntimeError(f"esper-leyline pulled torch into its environment: {report}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", help="comma-separated distribution names (default: all)")
    parser.add_argument("--work-dir", type=Path, help="where wheels and venvs go (default: a temp dir)")
    args = parser.parse_args(argv)
    members = workspace_members()
    if args.members:
        wanted = set(args.members.split(","))
        unknown = wanted - {m.distribution for m in members}
        if unknown:
            parser.error(f"unknown members: {sorted(unknown)}")
        members_to_check = [m for m in members if m.distribution in wanted]
    else:
        members_to_check = members
    with tempfile.TemporaryDirectory() as temp:
        work = args.work_dir or Path(temp)
        dist = work / "dist"
        build_wheels(members, dist)  # all of them: a member's siblings must be installable from here
        failures = 0
        for member in members_to_check:
            try:
                print(f"{member.distribution}: ok ({check_member(member, dist, work)})", flush=True)
            except RuntimeError as error:
                failures += 1
                print(f"{member.distribution}: FAILED\n{error}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
