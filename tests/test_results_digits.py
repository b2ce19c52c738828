"""docs/results/digits.md cannot drift from its data or from the code: the page is exactly what
tools/digits_results.py renders from the committed records, the commit it names is in this history, and the first
round of its documented training command, rerun at today's code, gives the committed numbers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import digits_results
import pytest

from esper.app.cli import main

ROOT = Path(__file__).resolve().parent.parent
#: Keys whose values are wall-clock measurements, never reproducible.
_TIMING_KEYS = {"seconds", "wall_seconds"}


def _record(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((digits_results.DATA / name).read_text(encoding="utf-8"))
    return record


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in _TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def test_the_page_is_what_its_records_give() -> None:
    assert digits_results.PAGE.read_text(encoding="utf-8") == digits_results.page_text()


@pytest.mark.subprocess
def test_the_page_names_a_clean_commit_of_this_history() -> None:
    code = _record("training.json")["code"]
    assert code is not None and not code["modified"]
    ancestry = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "--is-ancestor", code["commit"], "HEAD"], check=False
    )
    assert ancestry.returncode == 0, f"commit {code['commit']} is not an ancestor of HEAD"


def test_the_one_round_run_is_the_first_round_of_the_documented_run() -> None:
    training, prefix = _record("training.json"), _record("prefix.json")
    assert _without_timing(prefix["warm_start"]) == _without_timing(training["warm_start"])
    assert _without_timing(prefix["rounds"]) == _without_timing(training["rounds"][:1])
    assert prefix["config"]["run"] == {**training["config"]["run"], "rounds": 1}


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_first_round_of_the_documented_command_reproduces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the config names the committed schedule choice by a path relative to the repository
    out = tmp_path / "run"
    assert (
        main(["train", "ppo", "--config", digits_results.TRAIN_CONFIG, "--rounds", "1", "--out", str(out), "--quiet"])
        == 0
    )
    rerun = digits_results.training_record(out, wall=None)
    committed = _record("prefix.json")
    for key in ("warm_start", "rounds", "validations", "config", "data"):
        assert _without_timing(rerun[key]) == _without_timing(committed[key]), key
