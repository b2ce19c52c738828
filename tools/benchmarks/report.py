"""What a benchmark run produces: ratios with their targets and regression bounds, tables, notes and profiles,
written as JSON (for tools) and Markdown (for people), both atomically.

A *bound* is the CI gate: crossing it makes every run of ``tools/bench`` exit non-zero, so bounds sit only on
figures load cannot move (counts of forwards, operators, Python calls) or on wall-clock ratios with a margin no
load produces. A *target* is the strict figure docs/performance.md asks for: missing it is reported, and fails
the run only under ``--check`` (meant for a quiet machine).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from esper.leyline import ConfigError
from esper.simic.atomic_files import write_text_atomic

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class Better(StrEnum):
    LOWER = "lower"
    HIGHER = "higher"


@dataclass(frozen=True)
class Metric:
    """One ratio. ``target``: the strict figure (``--check``); ``bound``: the CI regression limit (both optional)."""

    key: str
    label: str
    value: float
    better: Better
    target: float | None = None
    bound: float | None = None

    def satisfies(self, limit: float) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value <= limit if self.better is Better.LOWER else self.value >= limit

    @property
    def target_met(self) -> bool | None:
        return None if self.target is None else self.satisfies(self.target)

    @property
    def within_bound(self) -> bool | None:
        return None if self.bound is None else self.satisfies(self.bound)

    def limit_text(self, limit: float | None) -> str:
        if limit is None:
            return "-"
        return f"{'<=' if self.better is Better.LOWER else '>='} {limit:g}x"

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "better": self.better.value,
            "target": self.target,
            "target_met": self.target_met,
            "bound": self.bound,
            "within_bound": self.within_bound,
        }


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ConfigError(f"table {self.title!r}: row {row} has {len(row)} cells, expected {len(self.columns)}")

    def to_markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join(" --- " for _ in self.columns) + "|",
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, JsonValue]:
        return {"title": self.title, "columns": list(self.columns), "rows": [list(row) for row in self.rows]}


@dataclass(frozen=True)
class BenchmarkResult:
    """``medians``: median seconds of every timed case (the raw figures behind the ratios)."""

    name: str
    title: str
    compared: str
    metrics: tuple[Metric, ...]
    tables: tuple[Table, ...]
    medians: dict[str, float]
    notes: tuple[str, ...] = ()
    profile: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "title": self.title,
            "compared": self.compared,
            "metrics": [metric.to_json() for metric in self.metrics],
            "tables": [table.to_json() for table in self.tables],
            "median_seconds": dict(self.medians),
            "notes": list(self.notes),
            "profile": self.profile,
        }


@dataclass(frozen=True)
class BenchReport:
    command: str
    machine: dict[str, str]
    results: tuple[BenchmarkResult, ...]
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return tuple(metric for result in self.results for metric in result.metrics)

    def regressions(self, strict: bool = False) -> tuple[Metric, ...]:
        """Metrics past their CI bound, and with ``strict`` (``--check``) also those that miss their target."""
        return tuple(
            metric for metric in self.metrics if metric.within_bound is False or (strict and metric.target_met is False)
        )

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "command": self.command,
            "machine": dict(self.machine),
            "settings": dict(self.settings),
            "results": [result.to_json() for result in self.results],
            "regressions": [metric.key for metric in self.regressions()],
        }

    def summary_table(self) -> Table:
        rows = []
        for metric in self.metrics:
            met = metric.target_met
            within = metric.within_bound
            rows.append(
                (
                    metric.label,
                    f"{metric.value:.3g}x",
                    metric.limit_text(metric.target),
                    "-" if met is None else ("pass" if met else "**miss**"),
                    metric.limit_text(metric.bound),
                    "-" if within is None else ("ok" if within else "**REGRESSION**"),
                )
            )
        return Table(
            "Summary", ("ratio", "measured", "target (--check)", "target met", "CI bound", "gate"), tuple(rows)
        )

    def to_markdown(self) -> str:
        parts = [
            "# Esper benchmarks",
            f"Command: `{self.command}`",
            "Machine: " + ", ".join(f"{key} {value}" for key, value in self.machine.items()),
        ]
        if self.settings:
            parts.append("Settings: " + ", ".join(f"{key} {value}" for key, value in self.settings.items()))
        parts += ["## Summary", self.summary_table().to_markdown()]
        for result in self.results:
            parts += [f"## {result.title}", result.compared]
            for table in result.tables:
                parts += [f"**{table.title}**", table.to_markdown()]
            if result.notes:
                parts.append("\n".join(f"- {note}" for note in result.notes))
            if result.profile is not None:
                parts += ["Profile (top frames of the Esper side):", "```\n" + result.profile.rstrip() + "\n```"]
        return "\n\n".join(parts) + "\n"

    def write(self, directory: Path) -> tuple[Path, Path]:
        """``results.json`` and ``results.md`` in ``directory`` (created), each replaced atomically."""
        json_path = directory / "results.json"
        markdown_path = directory / "results.md"
        write_text_atomic(json_path, json.dumps(self.to_json(), indent=2) + "\n")
        write_text_atomic(markdown_path, self.to_markdown())
        return json_path, markdown_path
