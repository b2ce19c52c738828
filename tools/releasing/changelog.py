"""A member's CHANGELOG.md: entries collect under ``## Unreleased`` and a release gives them its heading."""

from __future__ import annotations

from datetime import date

from packaging.version import Version

from releasing.workspace import WorkspaceError

UNRELEASED = "## Unreleased"


def _unreleased_bounds(lines: list[str]) -> tuple[int, int]:
    try:
        start = lines.index(UNRELEASED)
    except ValueError:
        raise WorkspaceError(f"no '{UNRELEASED}' heading") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def unreleased_entries(text: str) -> list[str]:
    """The non-blank lines under ``## Unreleased``: what the next release will say it changed."""
    lines = text.splitlines()
    start, end = _unreleased_bounds(lines)
    return [line for line in lines[start + 1 : end] if line.strip()]


def release_section(text: str, version: Version, day: date) -> str:
    """The changelog with the unreleased entries under ``## <version> - <day>`` and an empty Unreleased above."""
    lines = text.splitlines()
    start, _ = _unreleased_bounds(lines)
    released = [*lines[: start + 1], "", f"## {version} - {day.isoformat()}", *lines[start + 1 :]]
    return "\n".join(released) + "\n"
