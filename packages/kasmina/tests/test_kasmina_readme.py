"""The README's example runs as written and ends with a fossilized seed that really helps."""

from __future__ import annotations

import re
from pathlib import Path

from _kasmina_fixtures import one_thread  # noqa: F401  (autouse fixture)

from esper.kasmina import MorphogeneticModel
from esper.leyline import SeedStage

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_germinates_trains_and_fossilizes() -> None:
    text = README.read_text()
    example = text[text.index("## Example") :]
    match = re.search(r"```python\n(.*?)```", example, re.DOTALL)
    assert match is not None
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(match.group(1), str(README), "exec"), namespace)
    model = namespace["model"]
    assert isinstance(model, MorphogeneticModel)
    report = model.slot_reports()[0]
    assert report.stage is SeedStage.FOSSILIZED
    assert report.seed is not None and report.seed.metrics.contribution is not None
    assert report.seed.metrics.contribution >= 10.0
