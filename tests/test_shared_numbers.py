"""Leyline holds the numbers packages share, not one package's own: every number it exports is read by at least two
readers (another member's code, or another leyline rule that other members read), so a tuning knob of one
package lives in that package, next to the code it tunes."""

from __future__ import annotations

import re
from pathlib import Path

import esper.leyline

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = ("kasmina", "tamiyo", "simic", "esper")
LEYLINE = ROOT / "packages" / "leyline" / "src" / "esper" / "leyline"


def _exported_numbers() -> dict[str, Path]:
    """Each number leyline exports, with the module that defines it."""
    numbers: dict[str, Path] = {}
    for name in esper.leyline.__all__:
        value = getattr(esper.leyline, name)
        if isinstance(value, int | float) and not isinstance(value, bool) and name.isupper():
            definition = re.compile(rf"^{name}\b.*=", re.MULTILINE)
            (module,) = [p for p in LEYLINE.glob("*.py") if definition.search(p.read_text())]
            numbers[name] = module
    return numbers


def _code(path: Path) -> str:
    """The file without its comment lines (a comment naming a number does not read it)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def _readers(name: str, module: Path) -> set[str]:
    word = re.compile(rf"\b{name}\b")
    readers = {
        member
        for member in MEMBERS
        if any(word.search(_code(p)) for p in (ROOT / "packages" / member / "src").rglob("*.py"))
    }
    others = [p for p in LEYLINE.glob("*.py") if p not in (module, LEYLINE / "__init__.py")]
    if any(word.search(_code(p)) for p in others) or len(word.findall(_code(module))) > 1:
        readers.add("leyline")
    return readers


def test_every_number_leyline_exports_has_two_readers() -> None:
    numbers = _exported_numbers()
    assert "HISTORY_LENGTH" in numbers  # the check sees the numbers at all
    alone = {name: sorted(_readers(name, module)) for name, module in numbers.items()}
    assert {name: readers for name, readers in alone.items() if len(readers) < 2} == {}
