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


def blueprints_table(outcomes: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per controller (a column only when there are several) and blueprint: what became of its seeds."""
    several = len(outcomes) > 1
    header = [
        "blueprint",
        "germinated",
        "reached blending",
        "fossilized",
        "pruned (why)",
        "mean contribution when fossilized (pp)",
        "params added per episode",
        "acc gained per 1k params (pp)",
    ]
    rows = []
    for controller, by_blueprint in outcomes.items():
        for blueprint, o in by_blueprint.items():
            contribution, per_1k = o["mean_contribution_when_fossilized"], o["accuracy_gained_per_1k_params"]
            row = [
                blueprint,
                o["germinated"],
                o["reached_blending"],
                o["fossilized"],
                _pruned_text(o),
                "n/a" if contribution is None else f"{contribution:.2f}",
                f"{o['params_added_per_episode']:.0f}",
                "n/a" if per_1k is None else f"{per_1k:.2f}",
            ]
            rows.append([controller, *row] if several else row)
    if not rows:
        return "No seed was germinated."
    return markdown_table(["controller", *header] if several else header, rows)


def _pruned_text(outcome: dict[str, Any]) -> str:
    """``3 (prune_stalled 2, prune_low_contribution 1; from TRAINING 2, HOLDING 1)``."""
    if not outcome["pruned"]:
        return "0"
    rules = ", ".join(f"{rule} {n}" for rule, n in outcome["prune_rules"].items())
    stages = ", ".join(f"{stage} {n}" for stage, n in outcome["pruned_from"].items())
    return f"{outcome['pruned']} ({rules + '; ' if rules else ''}from {stages})"


BLUEPRINTS_NOTE = (
    "Counts are totals over the episodes. A prune's why: the rule that pruned it (rule-based controllers whose "
    "decisions were recorded) and the stage it was pruned from. Contributions are counterfactual (validation "
    "accuracy with the seed minus without it, pp). Accuracy gained per 1,000 parameters: the contribution at the "
    "episode's end of the seeds that then change the output, per 1,000 of their parameters."
)
