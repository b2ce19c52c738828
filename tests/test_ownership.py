"""What owning teams and users rely on: declared ranges, owners, changelogs, licenses, tested Python/torch."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from releasing.workspace import Member, load_members

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = load_members(ROOT)
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())


def locked_version(name: str) -> Version:
    (version,) = {Version(p["version"]) for p in LOCK["package"] if p["name"] == name}
    return version


def codeowners() -> dict[str, str]:
    lines = (ROOT / "CODEOWNERS").read_text().splitlines()
    return dict(line.split() for line in lines if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize("member", MEMBERS.values(), ids=list(MEMBERS))
def test_every_sibling_range_is_one_bounded_series_holding_the_workspace_version(member: Member) -> None:
    for name, requirement in member.sibling_requirements(set(MEMBERS)).items():
        bounds = {spec.operator: Version(spec.version) for spec in requirement.specifier}
        assert set(bounds) == {">=", "<"}, requirement
        assert MEMBERS[name].version in requirement.specifier, requirement
        lower, upper = bounds[">="], bounds["<"]
        assert upper == (Version(f"0.{lower.minor + 1}") if lower.major == 0 else Version(f"{lower.major + 1}"))


def test_workspace_sources_keep_resolving_siblings_from_the_workspace() -> None:
    root_sources = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
    assert all(root_sources[name] == {"workspace": True} for name in MEMBERS)
    for member in MEMBERS.values():
        sources = tomllib.loads((member.directory / "pyproject.toml").read_text()).get("tool", {})
        declared = sources.get("uv", {}).get("sources", {})
        assert set(declared) == set(member.sibling_requirements(set(MEMBERS))), member.distribution
        assert all(source == {"workspace": True} for source in declared.values())
    for package in LOCK["package"]:
        if package["name"] in MEMBERS:
            assert "editable" in package["source"], package["name"]


@pytest.mark.parametrize("member", MEMBERS.values(), ids=list(MEMBERS))
def test_python_and_torch_ranges_are_the_tested_ones(member: Member) -> None:
    project = tomllib.loads((member.directory / "pyproject.toml").read_text())["project"]
    python = Version(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert project["requires-python"] == f">={python},<{python.major}.{python.minor + 1}"
    python_classifiers = {
        c for c in project["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert python_classifiers == {f"Programming Language :: Python :: {python}"}
    torch = locked_version("torch")
    series = f">={torch.major}.{torch.minor},<{torch.major}.{torch.minor + 1}"
    for text in [*project["dependencies"], *member.test_requirements]:
        requirement = Requirement(text)
        if requirement.name == "torch":
            assert str(requirement.specifier) == str(Requirement(f"torch{series}").specifier), text


@pytest.mark.parametrize("member", MEMBERS.values(), ids=list(MEMBERS))
def test_wheel_metadata_a_user_expects(member: Member) -> None:
    project = tomllib.loads((member.directory / "pyproject.toml").read_text())["project"]
    assert project["readme"] == "README.md"
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (member.directory / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "Typing :: Typed" in project["classifiers"]
    assert (member.directory / "src" / Path(*member.import_name.split(".")) / "py.typed").exists()


@pytest.mark.parametrize("member", MEMBERS.values(), ids=list(MEMBERS))
def test_owners_api_tests_and_release_command_in_every_readme(member: Member) -> None:
    directory = f"/{member.directory.relative_to(ROOT)}/"
    team = codeowners()[directory]
    readme = (member.directory / "README.md").read_text()
    assert f"**Owners:** `{team}`" in readme
    assert "**Public API:**" in readme
    assert f"uv run pytest packages/{member.directory.name}/tests" in readme
    assert f"--member {member.distribution} --test-paths" in readme
    assert f"tools/release.py prepare {member.distribution}" in readme


def test_codeowners_names_one_team_per_member_and_nothing_else() -> None:
    owners = codeowners()
    assert set(owners) == {"*"} | {f"/{m.directory.relative_to(ROOT)}/" for m in MEMBERS.values()}
    assert len({owners[f"/{m.directory.relative_to(ROOT)}/"] for m in MEMBERS.values()}) == len(MEMBERS)


@pytest.mark.parametrize("member", MEMBERS.values(), ids=list(MEMBERS))
def test_changelog_has_unreleased_and_every_release(member: Member) -> None:
    changelog = (member.directory / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", changelog, flags=re.MULTILINE)
    assert headings[0] == "Unreleased"
    released = [Version(h.split(" - ")[0]) for h in headings[1:]]
    assert released == sorted(member.released_versions(), reverse=True)
    assert member.released_versions(), "every member has at least its first release"
