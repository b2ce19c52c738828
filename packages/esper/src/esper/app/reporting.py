"""Markdown for summaries: episode tables, comparison tables, training tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esper.app.evaluation import interval_text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def episodes_table(rows: Sequence[dict[str, Any]]) -> str:
    return markdown_table(
        ["seed", "final acc %", "params added", "germinated", "fossilized", "pruned", "rolled back", "return"],
        [
            [
                r["seed"],
                f"{r['final_accuracy']:.2f}",
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


def comparison_table(stats: Sequence[dict[str, Any]]) -> str:
    with_static = any("gain_over_static" in s for s in stats)
    header = ["controller", "final acc % [95% CI]", "params added", "germinated", "fossilized", "pruned"]
    if with_static:
        header += ["gain over static (pp)", "gain per 1k params (pp)"]
    header.append("rollbacks")
    rows = []
    for s in stats:
        row = [
            s["controller"],
            interval_text(s["final_accuracy"]),
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


def paired_table(baseline: str, paired: dict[str, dict[str, dict[str, float | int]]]) -> str:
    return markdown_table(
        ["controller", f"accuracy minus {baseline} (pp) [95% CI]", f"params minus {baseline}"],
        [
            [name, interval_text(diff["final_accuracy"]), interval_text(diff["params_added"], 0)]
            for name, diff in paired.items()
        ],
    )
