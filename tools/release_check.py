"""Prove each workspace member works as users will install it: alone, with the oldest sibling versions its
ranges allow, and with the newest.

For every member (or ``--members``):

1. build its wheel and check what a user sees in it (README as long description, license, classifiers,
   ``py.typed``, a ``>=,<`` range on every sibling and on torch);
2. choose its sibling sets: the oldest versions its declared ranges allow (released versions are rebuilt
   from their release commits, see ``releasing/compat.py``) and the newest (the workspace's);
3. for each set (once when both are the same): a fresh virtual environment with only those wheels and their
   declared dependencies (third-party versions as in uv.lock), where every module must import, except one that
   needs a package of an optional extra the default install leaves out (and ``esper-leyline`` must not pull
   torch in); a set the resolver refuses fails here, before anything runs;
4. add the member's ``test`` dependency group and run the member's own tests against the installed wheels
   (a copy of its tests/ and README.md, so nothing is imported from the workspace's sources).

Usage: ``uv run python tools/release_check.py [--root DIR] [--members esper-leyline,esper-kasmina] [--work-dir DIR]``
Exit status 0 when every member passed; one line per member.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from releasing.compat import Candidate, newest_set, oldest_set
from releasing.wheels import CommandError, WheelBuilder, metadata_problems, run
from releasing.workspace import ROOT, Member, WorkspaceError, load_members, member_named

# Runs inside the fresh venv: import every module of the member's package, report whether torch exists. A module
# may fail only for want of a package of one of the member's optional extras (argv[2], comma-separated): the
# default install leaves those out (esper.simic.envs.ray_pool needs `esper-simic[ray]`).
_IMPORT_ALL = """
import importlib, importlib.util, pkgutil, sys
optional = set(filter(None, sys.argv[2].split(",")))
package = importlib.import_module(sys.argv[1])
names = [sys.argv[1]] + [m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")]
extra_only = []
for name in names:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in optional:
            raise
        extra_only.append(name)
needs = f" ({', '.join(extra_only)} needs an extra)" if extra_only else ""
torch = "torch present" if importlib.util.find_spec("torch") else "torch absent"
print(len(names) - len(extra_only), f"modules imported{needs};", torch)
"""

_PYTEST_INI = """[pytest]
addopts = --import-mode=importlib -p no:cacheprovider
pythonpath = tests
markers =
    slow: end-to-end runs that take more than a few seconds
    ray: tests that run environments on Ray (skipped without the ray extra)
"""


class ReleaseCheck:
    """One run of the check: the wheels it built, the lock's pins, and where its environments live."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work
        self.members = load_members(root)
        self.wheels = WheelBuilder(root, work)
        self.constraints = work / "constraints.txt"
        export = ["uv", "export", "--frozen", "--quiet", "--all-packages", "--all-groups", "--no-emit-workspace"]
        run([*export, "--no-hashes", "--no-header", "--no-annotate", "--output-file", str(self.constraints)], root)

    def check(self, member: Member) -> str:
        """The member's report line; raises CommandError or WorkspaceError naming what failed."""
        own = Candidate(member.distribution, member.version, None, {})
        problems = metadata_problems(member, self.wheels.wheel(own), set(self.members))
        if problems:
            raise WorkspaceError(f"wheel metadata: {'; '.join(problems)}")
        oldest = oldest_set(self.root, self.members, member.distribution)
        if oldest is None:
            raise WorkspaceError("no released or workspace versions of its siblings satisfy every declared range")
        newest = newest_set(self.root, self.members, member.distribution)
        sets = {"oldest": oldest, "newest": newest}
        if [c.release_commit for c in oldest.values()] == [c.release_commit for c in newest.values()]:
            sets = {"oldest = newest": newest}
        return "; ".join(
            f"{name} [{self._describe(chosen)}]: {self._run_labelled(member, own, chosen, name)}"
            for name, chosen in sets.items()
        )

    def _run_labelled(self, member: Member, own: Candidate, chosen: dict[str, Candidate], name: str) -> str:
        """Run one set; a failure names the set, and for the oldest set says what usually fixes it."""
        try:
            return self._run_set(member, own, chosen, name)
        except (CommandError, WorkspaceError) as error:
            hint = ""
            if name == "oldest":
                hint = (
                    " (the oldest versions its ranges allow: when it needs something newer from a sibling, raise "
                    "that range's lower bound, e.g. `tools/release.py bump <sibling> --bump minor` moves it)"
                )
            raise type(error)(f"with the {name} set [{self._describe(chosen)}]{hint}: {error}") from None

    @staticmethod
    def _describe(chosen: dict[str, Candidate]) -> str:
        return ", ".join(candidate.label for candidate in chosen.values()) or "no siblings"

    def _run_set(self, member: Member, own: Candidate, chosen: dict[str, Candidate], name: str) -> str:
        venv = self.work / f"venv-{member.distribution}-{name.replace(' = ', '-')}"
        run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], self.root)
        python = str(venv / "bin" / "python")
        install = ["uv", "pip", "install", "--quiet", "--python", python, "--constraint", str(self.constraints)]
        wheels = [str(self.wheels.wheel(candidate)) for candidate in [own, *chosen.values()]]
        try:
            run([*install, *wheels], self.root)
        except CommandError as error:
            raise CommandError(f"the resolver refused {self._describe(chosen)}: {error}") from None
        imported = run([python, "-c", _IMPORT_ALL, member.import_name, _extra_packages(member)], self.root).strip()
        if member.distribution == "esper-leyline" and "torch absent" not in imported:
            raise WorkspaceError(f"esper-leyline pulled torch into its environment: {imported}")
        run([*install, *member.test_requirements], self.root)
        tests = self._tests_copy(member)
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        output = run([python, "-m", "pytest", "-q", "tests"], tests, environment)
        return f"{imported}; {output.strip().splitlines()[-1]}"

    def _tests_copy(self, member: Member) -> Path:
        copy = self.work / f"tests-{member.distribution}"
        if not copy.exists():
            shutil.copytree(member.directory / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(member.directory / "README.md", copy / "README.md")
            (copy / "pytest.ini").write_text(_PYTEST_INI)
        return copy


def _extra_packages(member: Member) -> str:
    """The import names of the packages the member's optional extras bring (comma-separated)."""
    project = tomllib.loads((member.directory / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return ",".join(sorted({Requirement(text).name.replace("-", "_") for texts in extras for text in texts}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this repository)")
    parser.add_argument("--members", help="comma-separated distribution names (default: all)")
    parser.add_argument("--work-dir", type=Path, help="where wheels and venvs go (default: a temp dir)")
    args = parser.parse_args(argv)
    members = load_members(args.root)
    try:
        chosen = [member_named(members, name) for name in args.members.split(",")] if args.members else members.values()
    except WorkspaceError as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory() as temp:
        check = ReleaseCheck(args.root, args.work_dir or Path(temp))
        failures = 0
        for member in chosen:
            try:
                print(f"{member.distribution}: ok ({check.check(member)})", flush=True)
            except (CommandError, WorkspaceError) as error:
                failures += 1
                print(f"{member.distribution}: FAILED: {error}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
