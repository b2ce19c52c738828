"""The rules of the test suite itself: CONTRIBUTING.md's fast loop leaves out exactly the registered slow
categories, tests that start processes or compile carry their marker, warnings are errors, and no test expects a
bare ``Exception``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILES = sorted([*ROOT.glob("packages/*/tests/test_*.py"), *ROOT.glob("tests/test_*.py")])

#: Source patterns that make a test slow, and the markers that may account for each.
SLOW_PATTERNS = {
    r"\bProcessPool\(": {"subprocess", "slow", "ray"},
    r"\bsubprocess\.run\(": {"subprocess", "static", "release", "slow", "ray"},
    r"\btorch\.compile\(": {"compile"},
}


def _pytest_options() -> dict[str, object]:
    options: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return options


def _registered_markers() -> set[str]:
    markers = _pytest_options()["markers"]
    assert isinstance(markers, list)
    return {str(line).split(":", 1)[0] for line in markers}


def test_the_fast_loop_deselects_every_registered_category() -> None:
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    (expression,) = re.findall(r'uv run pytest -n 2 -m "([^"]+)"', contributing)
    deselected = set(re.findall(r"not (\w+)", expression))
    assert deselected == _registered_markers()
    assert "--strict-markers" in str(_pytest_options()["addopts"])


def test_tests_that_start_processes_or_compile_carry_their_marker() -> None:
    unmarked = []
    for path in TEST_FILES:
        if path.name == Path(__file__).name:
            continue
        source = path.read_text()
        for pattern, markers in SLOW_PATTERNS.items():
            if re.search(pattern, source) and not any(f"pytest.mark.{m}" in source for m in markers):
                unmarked.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert unmarked == []


def test_warnings_are_errors() -> None:
    filters = _pytest_options()["filterwarnings"]
    assert isinstance(filters, list) and filters[0] == "error"


def test_no_test_expects_a_bare_exception() -> None:
    bare = re.compile(r"pytest\.raises\(\s*(Base)?Exception\b")
    offenders = [
        str(p.relative_to(ROOT)) for p in TEST_FILES if p.name != Path(__file__).name and bare.search(p.read_text())
    ]
    assert offenders == []
