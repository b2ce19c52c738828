"""tools/bench: the interleaved timing helper and its paired ratios, the target/bound logic (CI bounds always,
targets only under --check), the report writers and the exit status. No timing asserts: fake clocks and fixed
figures only (speed itself is what tools/bench measures); the load-independent gates are in
test_bench_gates.py."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path

import pytest
import torch
from benchmarks import cli, counterfactuals
from benchmarks.context import QUICK, BenchContext
from benchmarks.report import BenchmarkResult, BenchReport, Better, Metric, Table
from benchmarks.timing import Case, Timings, Work, measure

from esper.leyline import ConfigError


class FakeClock:
    """Advances by the cost of the case that is running; records the order cases ran in."""

    def __init__(self) -> None:
        self.now = 0.0
        self.order: list[str] = []

    def __call__(self) -> float:
        return self.now

    def case(self, name: str, cost: float) -> Case:
        def work() -> None:
            self.order.append(name)
            self.now += cost

        return Case.of(name, work)


def test_measure_rotates_the_order_and_keeps_one_sample_per_round() -> None:
    clock = FakeClock()
    cases = [clock.case("a", 1.0), clock.case("b", 3.0), clock.case("c", 2.0)]
    timings = measure(cases, rounds=3, warmup=1, clock=clock)
    # warmup round a b c, then rotations b c a, c a b, a b c
    assert clock.order == list("abcbcacababc")
    assert timings.samples == {"a": (1.0, 1.0, 1.0), "b": (3.0, 3.0, 3.0), "c": (2.0, 2.0, 2.0)}
    assert timings.ratio("b", "a") == 3.0
    assert timings.medians() == {"a": 1.0, "b": 3.0, "c": 2.0}


def test_measure_divides_by_calls_and_prepares_outside_the_clock() -> None:
    clock = FakeClock()
    prepared: list[int] = []

    def prepare() -> Work:
        clock.now += 100.0  # untimed setup must not reach the samples
        prepared.append(1)

        def work() -> None:
            clock.now += 0.5

        return work

    timings = measure([Case("x", prepare)], rounds=2, warmup=0, calls=4, clock=clock)
    assert timings.samples["x"] == (0.5, 0.5)
    assert len(prepared) == 2


def test_median_is_robust_to_one_slow_round() -> None:
    timings = Timings({"a": (1.0, 1.0, 9.0), "b": (2.0, 2.0, 2.0)})
    assert timings.median("a") == 1.0
    assert timings.ratio("a", "b") == 0.5


def test_paired_ratio_cancels_load_that_hits_both_cases_of_a_round() -> None:
    # Rounds 2 and 3 ran under load (everything 3x and 5x slower): the per-round ratio stays 2, while the ratio
    # of the medians mixes a loaded round of one case with a quiet round of the other.
    timings = Timings({"a": (2.0, 6.0, 10.0, 2.0, 6.0), "b": (1.0, 3.0, 5.0, 1.0, 3.0)})
    assert timings.paired_ratio("a", "b") == 2.0
    lopsided = Timings({"a": (2.0, 2.0, 6.0), "b": (1.0, 3.0, 3.0)})
    assert lopsided.ratio("a", "b") == pytest.approx(2 / 3)
    assert lopsided.paired_ratio("a", "b") == 2.0
    with pytest.raises(ConfigError, match="no timings for case 'z'"):
        timings.paired_ratio("z", "a")


@pytest.mark.parametrize(("rounds", "warmup", "calls"), [(0, 1, 1), (1, -1, 1), (1, 1, 0)])
def test_measure_rejects_bad_settings(rounds: int, warmup: int, calls: int) -> None:
    with pytest.raises(ConfigError, match="need rounds >= 1, warmup >= 0 and calls >= 1"):
        measure([Case.of("a", lambda: None)], rounds=rounds, warmup=warmup, calls=calls)


def test_measure_rejects_duplicate_names_and_unknown_cases() -> None:
    with pytest.raises(ConfigError, match="unique"):
        measure([Case.of("a", lambda: None), Case.of("a", lambda: None)], rounds=1)
    with pytest.raises(ConfigError, match="no timings for case 'z'"):
        Timings({"a": (1.0,)}).median("z")


@pytest.mark.parametrize(
    ("better", "value", "target_met", "within_bound"),
    [
        (Better.LOWER, 1.05, True, True),
        (Better.LOWER, 1.2, False, True),
        (Better.LOWER, 1.6, False, False),
        (Better.LOWER, math.nan, False, False),
    ],
)
def test_lower_is_better_metric(better: Better, value: float, target_met: bool, within_bound: bool) -> None:
    metric = Metric("m", "m", value, better, target=1.1, bound=1.5)
    assert metric.target_met is target_met
    assert metric.within_bound is within_bound


@pytest.mark.parametrize(
    ("value", "target_met", "within_bound"), [(6.0, True, True), (3.0, False, True), (1.2, False, False)]
)
def test_higher_is_better_metric(value: float, target_met: bool, within_bound: bool) -> None:
    metric = Metric("m", "m", value, Better.HIGHER, target=5.0, bound=1.5)
    assert metric.target_met is target_met
    assert metric.within_bound is within_bound


def test_a_metric_without_target_or_bound_never_fails() -> None:
    metric = Metric("m", "m", 100.0, Better.LOWER)
    assert metric.target_met is None and metric.within_bound is None


def _result(name: str, value: float) -> BenchmarkResult:
    return BenchmarkResult(
        name=name,
        title=f"Title {name}",
        compared="what against what",
        metrics=(Metric(f"{name}.ratio", "ratio", value, Better.LOWER, target=1.1, bound=1.5),),
        tables=(Table("figures", ("case", "ms"), (("a", "1.0"), ("b", "2.0"))),),
        medians={"a": 0.001, "b": 0.002},
        notes=("a note",),
        profile="  1.000 function",
    )


def test_report_writes_json_and_markdown_atomically(tmp_path: Path) -> None:
    report = BenchReport("tools/bench --quick", {"cores": "2"}, (_result("one", 1.0), _result("two", 1.7)))
    json_path, markdown_path = report.write(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json", "results.md"]
    data = json.loads(json_path.read_text())
    assert data["regressions"] == ["two.ratio"]
    assert data["results"][0]["metrics"][0]["target_met"] is True
    assert data["results"][1]["metrics"][0]["within_bound"] is False
    markdown = markdown_path.read_text()
    assert "`tools/bench --quick`" in markdown
    assert "| a | 1.0 |" in markdown
    assert "**REGRESSION**" in markdown and "- a note" in markdown and "1.000 function" in markdown


def test_table_rows_must_match_the_columns() -> None:
    with pytest.raises(ConfigError, match="2 cells, expected 3"):
        Table("t", ("a", "b", "c"), (("1", "2"),))


def _fake_benchmark(monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    module = types.ModuleType("fake_benchmark")
    module.run = lambda ctx: _result("fake", value)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_benchmark", module)
    monkeypatch.setattr(cli, "BENCHMARKS", {"fake": "fake_benchmark"})


@pytest.mark.parametrize(
    ("value", "flags", "status"),
    [
        (1.0, [], 0),
        (1.2, [], 0),  # misses the target (1.1), within the CI bound (1.5): CI passes
        (2.0, [], 1),
        (1.0, ["--check"], 0),
        (1.2, ["--check"], 1),  # --check (a quiet machine) holds the strict target
        (2.0, ["--check"], 1),
    ],
)
def test_quick_fails_only_past_a_bound_and_check_also_on_a_missed_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: float, flags: list[str], status: int
) -> None:
    _fake_benchmark(monkeypatch, value)
    previous = torch.get_num_threads()
    try:
        assert cli.main(["--quick", *flags, "--out", str(tmp_path)]) == status
    finally:
        torch.set_num_threads(previous)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["results"][0]["name"] == "fake"
    assert data["settings"]["mode"] == "quick" + (" --check" if flags else "")


def test_unknown_benchmark_or_missing_device_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["--only", "nope"]) == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["--device", "cuda"]) == 2


def test_counterfactual_benchmark_runs_on_a_tiny_configuration(tmp_path: Path) -> None:
    sizes = dataclasses.replace(QUICK, counterfactual_rounds=1, counterfactual_calls=1)
    ctx = BenchContext(
        quick=True, device=torch.device("cpu"), profile=False, default_threads=1, sizes=sizes, out=tmp_path
    )
    result = counterfactuals.run(ctx)
    metrics = {metric.key: metric for metric in result.metrics}
    assert sorted(metrics) == [
        "counterfactuals.auto_choice",
        "counterfactuals.forwards_per_validation",
        "counterfactuals.fused_speedup",
        "counterfactuals.rows_agree",
    ]
    # The gates are counts: auto runs the 4 rows separately on the CPU, and both batchings agree on every row.
    assert metrics["counterfactuals.forwards_per_validation"].value == 1.0
    assert metrics["counterfactuals.rows_agree"].value == 1.0
    assert all(metric.within_bound is not False for metric in result.metrics)
    speedup = metrics["counterfactuals.fused_speedup"]
    assert math.isfinite(speedup.value) and speedup.value > 0 and speedup.bound is None
    assert "current" in result.notes[0] and len(result.medians) == 2
