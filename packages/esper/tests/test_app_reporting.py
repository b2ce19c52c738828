"""Per-controller statistics and the Markdown tables built from them."""

from __future__ import annotations

import pytest
from _esper_fixtures import episode

from esper.app.evaluation import controller_stats, episode_row, interval_text, paired_comparison
from esper.app.reporting import accuracy_note, comparison_table, episodes_table, markdown_table, paired_table
from esper.app.statistics import bootstrap_mean
from esper.simic.envs.episode_records import EpisodeSummary

SEEDS = (11, 12, 13, 14)


def grown() -> list[EpisodeSummary]:
    return [
        episode(11, 62.0, 400, germinated=2, fossilized=1, pruned=1, total_reward=0.4),
        episode(12, 58.0, 0, germinated=1, pruned=1, total_reward=0.2),
        episode(13, 71.0, 800, germinated=2, fossilized=2, total_reward=0.5),
        episode(14, 40.0, 200, germinated=1, rolled_back=True, total_reward=-0.5),
    ]


def static() -> list[EpisodeSummary]:
    return [episode(seed, accuracy) for seed, accuracy in zip(SEEDS, (30.0, 31.0, 29.0, 30.0), strict=True)]


def test_episode_row_keeps_the_reported_numbers() -> None:
    row = episode_row(grown()[3])
    assert row == {
        "seed": 14,
        "test_accuracy": 40.0,
        "val_accuracy": 45.0,
        "params_added": 200,
        "germinated": 1,
        "fossilized": 0,
        "pruned": 0,
        "rolled_back": True,
        "total_reward": -0.5,
    }


def test_controller_stats_means_intervals_and_gain_over_static() -> None:
    stats = controller_stats("heuristic", grown(), static())
    assert stats["controller"] == "heuristic" and stats["episodes"] == 4 and stats["rollbacks"] == 1
    assert stats["test_accuracy"] == bootstrap_mean([62.0, 58.0, 71.0, 40.0]).as_dict()
    assert stats["val_accuracy"] == bootstrap_mean([67.0, 63.0, 76.0, 45.0]).as_dict()
    assert stats["params_added"]["mean"] == 350.0
    assert stats["fossilized"]["mean"] == 0.75
    gains = [32.0, 27.0, 42.0, 10.0]  # on the test accuracy
    assert stats["gain_over_static"] == bootstrap_mean(gains).as_dict()
    ratio = stats["gain_per_1k_params"]
    assert ratio["mean"] == pytest.approx(sum(gains) / 1.4)
    assert ratio["low"] <= ratio["mean"] <= ratio["high"]
    static_stats = controller_stats("static", static(), static())
    assert static_stats["gain_over_static"]["mean"] == 0.0
    assert static_stats["gain_per_1k_params"] is None  # no parameters added: nothing to divide by
    assert "gain_over_static" not in controller_stats("heuristic", grown())


def test_paired_statistics_need_the_same_seeds_in_order() -> None:
    diff = paired_comparison(grown(), static())
    assert diff["test_accuracy"]["mean"] == pytest.approx((32.0 + 27.0 + 42.0 + 10.0) / 4)
    assert diff["val_accuracy"]["mean"] == pytest.approx((32.0 + 27.0 + 42.0 + 10.0) / 4)
    shifted = [episode(e.seed, e.test_accuracy, val_accuracy=e.final_val_accuracy + 4.0) for e in grown()]
    assert paired_comparison(shifted, static())["val_accuracy"]["mean"] == pytest.approx(27.75 + 4.0)
    assert paired_comparison(shifted, static())["test_accuracy"]["mean"] == pytest.approx(27.75)
    assert diff["params_added"]["mean"] == 350.0
    with pytest.raises(ValueError, match="same episode seeds"):
        paired_comparison(grown(), list(reversed(static())))
    with pytest.raises(ValueError, match="same episode seeds"):
        controller_stats("heuristic", grown(), static()[:3])


def test_markdown_table_shape() -> None:
    table = markdown_table(["a", "b"], [[1, "x"], [2.5, None]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 | None |"]


def test_episodes_table_rows() -> None:
    lines = episodes_table([episode_row(e) for e in grown()], metric="accuracy").splitlines()
    assert len(lines) == 2 + 4
    assert lines[0].startswith("| seed | test acc % | val acc % | params added |")
    assert lines[2] == "| 11 | 62.00 | 67.00 | 400 | 2 | 1 | 1 |  | 0.400 |"
    assert lines[5] == "| 14 | 40.00 | 45.00 | 200 | 1 | 0 | 0 | yes | -0.500 |"


def test_comparison_table_with_and_without_static_columns() -> None:
    with_static = [controller_stats("heuristic", grown(), static()), controller_stats("static", static(), static())]
    lines = comparison_table(with_static, metric="accuracy").splitlines()
    assert lines[0].startswith("| controller | test acc % [95% CI] | val acc % [95% CI] |")
    assert "test gain over static (pp)" in lines[0] and "test gain per 1k params (pp)" in lines[0]
    heuristic = with_static[0]
    assert lines[2].startswith(
        f"| heuristic | {interval_text(heuristic['test_accuracy'])} | {interval_text(heuristic['val_accuracy'])} | "
    )
    assert lines[2].endswith(" | 1 |")  # one rollback
    assert "| n/a |" in lines[3]  # static's gain per parameter is undefined
    plain = comparison_table([controller_stats("heuristic", grown())], metric="accuracy").splitlines()
    assert "gain over static" not in plain[0] and len(plain) == 3
    assert plain[0].count("|") == 9  # controller, 6 metrics, rollbacks


def test_paired_table_and_interval_text() -> None:
    table = paired_table("static", {"heuristic": paired_comparison(grown(), static())}, metric="accuracy").splitlines()
    assert table[0] == (
        "| controller | test acc minus static (pp) [95% CI] | val acc minus static (pp) [95% CI] "
        "| params minus static |"
    )
    assert table[2].startswith("| heuristic | 27.75 [")
    assert interval_text(None) == "n/a"
    assert interval_text({"mean": 1.0, "low": 0.5, "high": 1.5, "n": 3}, 1) == "1.0 [0.5, 1.5]"


def test_tables_and_note_name_a_language_model_metric() -> None:
    metric = "next-token accuracy"
    assert episodes_table([episode_row(e) for e in grown()], metric=metric).startswith(
        "| seed | test next-token acc % | val next-token acc % |"
    )
    stats = [controller_stats("heuristic", grown(), static())]
    assert comparison_table(stats, metric=metric).startswith(
        "| controller | test next-token acc % [95% CI] | val next-token acc % [95% CI] |"
    )
    paired = paired_table("static", {"heuristic": paired_comparison(grown(), static())}, metric=metric)
    assert paired.startswith("| controller | test next-token acc minus static (pp) [95% CI] |")
    note = accuracy_note(
        {
            "split": "pydoc topics",
            "split_seed": None,
            "examples": "windows of 64 bytes",
            "metric": metric,
            "sizes": {"train": 5828, "validation": 728, "test": 728},
        }
    )
    assert "(5,828 / 728 / 728 windows of 64 bytes)" in note
    assert "The metric is **next-token accuracy** (over every position" in note
    assert "**Test next-token accuracy** is measured once per episode" in note
    assert "images" not in note and "split seed" not in note
