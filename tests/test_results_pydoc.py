"""docs/results/pydoc-bytes.md cannot drift from its data or from the code: the page is exactly what
tools/pydoc_results.py renders from the committed records, the runs it reports were made at clean commits of this
history, and the static host's and the best schedule's first held-out episode, rerun at today's code, give the
committed numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydoc_results
import pytest
from _results_checks import assert_clean_commit_of_this_history
from results_records import read_json

from esper.app.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _record(name: str) -> dict[str, Any]:
    record: dict[str, Any] = read_json(pydoc_results.DATA / name)
    return record


def test_the_page_is_what_its_records_give() -> None:
    assert pydoc_results.PAGE.read_text(encoding="utf-8") == pydoc_results.page_text()


@pytest.mark.subprocess
@pytest.mark.parametrize("record", ["training.json", "compare.json"])
def test_the_page_names_clean_commits_of_this_history(record: str) -> None:
    assert_clean_commit_of_this_history(_record(record)["code"])


def test_every_controller_played_the_same_held_out_episodes() -> None:
    comparison = _record("compare.json")
    seeds = comparison["seeds"]
    assert all(seed >= 2**31 for seed in seeds), "evaluation seeds have the top bit set"
    for label in comparison["controllers"]:
        assert [episode["seed"] for episode in comparison["episodes"][label]] == seeds, label


@pytest.mark.slow
def test_the_first_held_out_episode_reproduces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The static host and the best fixed schedule on the first evaluation seed: every number of the episode
    (test and validation next-token accuracy, parameters, lifecycle counts, return) as committed."""
    monkeypatch.chdir(ROOT)
    comparison = _record("compare.json")
    controllers = ["static", _record("roles.json")["best_schedule"]]
    out = tmp_path / "rerun"
    argv = ["compare", "--task", pydoc_results.TASK, "--controllers", ",".join(controllers), "--episodes", "1"]
    argv += ["--seed", str(comparison["seed"]), "--backend", "inprocess", "--envs", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    rerun = read_json(out / "results.json")
    for label in controllers:
        assert rerun["episodes"][label] == comparison["episodes"][label][:1], label
