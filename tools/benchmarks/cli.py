"""``tools/bench``: run the benchmarks, write ``results.json`` and ``results.md``, print the summary, and exit
non-zero when a figure crossed its CI bound, or with ``--check`` also missed its target (1), or the command line
was wrong (2)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks.context import FULL, QUICK, BenchContext
from benchmarks.report import BenchmarkResult, BenchReport

#: Benchmark name -> module with ``run(ctx) -> BenchmarkResult``, in the issue's order. Imported on demand, so
#: only ``ppo_throughput`` needs the optional ``bench`` dependency group.
BENCHMARKS: dict[str, str] = {
    "host_overhead": "benchmarks.host_overhead",
    "transformer_overhead": "benchmarks.transformer_overhead",
    "act_latency": "benchmarks.act_latency",
    "ppo_throughput": "benchmarks.ppo_throughput",
    "env_scaling": "benchmarks.env_scaling",
    "counterfactuals": "benchmarks.counterfactuals",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/bench",
        description="Esper's performance benchmarks: ratios measured side by side (interleaved, medians).",
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run (few repetitions, under 2 minutes)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="also fail when a figure misses its strict target (for a quiet machine; CI gates on the bounds only)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where models and envs run")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default runs/bench/quick|full)")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add cProfile top frames of the Esper side when a target is missed, and the act path's per-part breakdown",
    )
    return parser.parse_args(argv)


def machine_info(device: torch.device) -> dict[str, str]:
    info = {
        "cores": str(os.cpu_count() or 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for distribution in ("sb3-contrib", "stable-baselines3"):
        try:
            info[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            info[distribution] = "not installed"
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _runner(name: str) -> Callable[[BenchContext], BenchmarkResult]:
    module = importlib.import_module(BENCHMARKS[name])
    run: Callable[[BenchContext], BenchmarkResult] = module.run
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(BENCHMARKS) if args.only is None else [name.strip() for name in args.only.split(",") if name]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        print(f"tools/bench: unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("tools/bench: --device cuda asked, but torch sees no CUDA device", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    out = args.out if args.out is not None else Path("runs") / "bench" / ("quick" if args.quick else "full")
    ctx = BenchContext(
        quick=args.quick,
        device=device,
        profile=args.profile,
        default_threads=torch.get_num_threads(),
        sizes=QUICK if args.quick else FULL,
        out=out,
    )
    command = "tools/bench " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    machine = machine_info(device)
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = []
    for name in names:
        began = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        result = _runner(name)(ctx)
        results.append(result)
        ratios = ", ".join(f"{metric.key.split('.', 1)[1]} {metric.value:.3g}x" for metric in result.metrics)
        print(f"[bench] {name}: {ratios} ({time.perf_counter() - began:.1f} s)", flush=True)
    elapsed = time.perf_counter() - started
    report = BenchReport(
        command=command.strip(),
        machine=machine,
        results=tuple(results),
        settings={
            "mode": ("quick" if args.quick else "full") + (" --check" if args.check else ""),
            "seconds": f"{elapsed:.0f}",
            "load average at end": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        },
    )
    json_path, markdown_path = report.write(out)
    print()
    print(report.summary_table().to_markdown())
    print(f"\nwrote {json_path} and {markdown_path} ({elapsed:.0f} s)")
    regressions = report.regressions(strict=args.check)
    for metric in regressions:
        if metric.within_bound is False:
            print(
                f"REGRESSION {metric.key}: {metric.value:.3g}x, bound {metric.limit_text(metric.bound)}",
                file=sys.stderr,
            )
        else:
            print(
                f"MISSED {metric.key}: {metric.value:.3g}x, target {metric.limit_text(metric.target)}", file=sys.stderr
            )
    return 1 if regressions else 0
