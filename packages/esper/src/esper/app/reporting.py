"""Markdown for summaries: episode tables, comparison tables, training tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esper.app.evaluation import interval_text


def short_metric(metric: str) -> str:
    """A metric's name as a column heading abbreviates it: ``accuracy`` -> ``acc``, ``next-token accuracy`` ->
    ``next-token acc``."""
    return metric.replace("accuracy", "acc")


def accuracy_note(data: dict[str, Any]) -> str:
    """What the metric columns mean, and the split they come from (``data`` as ``data_record`` writes it)."""
    sizes = data["sizes"]
    seed = "" if data["split_seed"] is None else f", split seed {data['split_seed']}"
    metric = data["metric"]
    counted = (
        " (over every position of every window: the share of bytes whose most likely successor is the right one)"
        if metric != "accuracy"
        else ""
    )
    return (
        f"Data: {data['split']} ({sizes['train']:,} / {sizes['validation']:,} / {sizes['test']:,} "
        f"{data['examples']}{seed}). The metric is **{metric}**{counted}. **Test {metric}** is measured once per "
        "episode, at its end, on the model the episode ends with; no controller, reward or gate ever sees it. "
        f"**Val {metric}** is the final validation {metric}, the figure the controller and the reward saw during "
        "the episode."
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def episodes_table(rows: Sequence[dict[str, Any]], *, metric: str) -> str:
    short = short_metric(metric)
    return markdown_table(
        [
            "seed",
            f"test {short} %",
            f"val {short} %",
            "params added",
            "germinated",
            "fossilized",
            "pruned",
            "rolled back",
            "return",
        ],
        [
            [
                r["seed"],
                f"{r['test_accuracy']:.2f}",
                f"{r['val_accuracy']:.2f}",
                r["params_added"],
                r["germinated"],
                r["fossilized"],
                r["pruned"],
                "yes" if r["rolled_back"] else "",
                f"{r['total_reward']:.3f}",
            ]
            for r in rows
        ],
    )


def comparison_table(stats: Sequence[dict[str, Any]], *, metric: str) -> str:
    with_static = any("gain_over_static" in s for s in stats)
    short = short_metric(metric)
    header = [
        "controller",
        f"test {short} % [95% CI]",
        f"val {short} % [95% CI]",
        "params added",
        "germinated",
        "fossilized",
        "pruned",
    ]
    if with_static:
        header += ["test gain over static (pp)", "test gain per 1k params (pp)"]
    header.append("rollbacks")
    rows = []
    for s in stats:
        row = [
            s["controller"],
            interval_text(s["test_accuracy"]),
            interval_text(s["val_accuracy"]),
            interval_text(s["params_added"], 0),
            interval_text(s["germinated"]),
            interval_text(s["fossilized"]),
            interval_text(s["pruned"]),
        ]
        if with_static:
            row += [interval_text(s.get("gain_over_static")), interval_text(s.get("gain_per_1k_params"))]
        row.append(s["rollbacks"])
        rows.append(row)
    return markdown_table(header, rows)


def paired_table(baseline: str, paired: dict[str, dict[str, dict[str, float | int]]], *, metric: str) -> str:
    short = short_metric(metric)
    return markdown_table(
        [
            "controller",
            f"test {short} minus {baseline} (pp) [95% CI]",
            f"val {short} minus {baseline} (pp) [95% CI]",
            f"params minus {baseline}",
        ],
        [
            [
                name,
                interval_text(diff["test_accuracy"]),
                interval_text(diff["val_accuracy"]),
                interval_text(diff["params_added"], 0),
            ]
            for name, diff in paired.items()
        ],
    )
