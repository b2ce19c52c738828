"""How much each benchmark measures (a CI-sized ``--quick`` run or the full one) and where it runs."""

from __future__ import annotations

import cProfile
import io
import pstats
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.timing import Work


@dataclass(frozen=True)
class Sizes:
    """Repetition counts. ``*_rounds`` are timed rounds of the interleaved measurement (medians over them)."""

    host_rounds: int
    host_warmup: int
    act_rounds: int
    act_calls: int
    ppo_rounds: int
    scaling_rounds: int
    scaling_steps: int
    #: Env counts of the scaling benchmark (processes for every count above 1); in-process only for the
    #: counts in ``scaling_inprocess_envs`` (always 1, the single-env baseline).
    scaling_envs: tuple[int, ...]
    scaling_inprocess_envs: tuple[int, ...]
    counterfactual_rounds: int
    counterfactual_calls: int
    #: Epochs of the random-valid envs whose observations feed the controller benchmarks.
    observation_epochs: int


QUICK = Sizes(
    host_rounds=9,
    host_warmup=2,
    act_rounds=15,
    act_calls=5,
    ppo_rounds=3,
    scaling_rounds=2,
    scaling_steps=2,
    scaling_envs=(1, 8),
    scaling_inprocess_envs=(1,),
    counterfactual_rounds=15,
    counterfactual_calls=5,
    observation_epochs=8,
)
FULL = Sizes(
    host_rounds=41,
    host_warmup=3,
    act_rounds=101,
    act_calls=10,
    ppo_rounds=9,
    scaling_rounds=5,
    scaling_steps=3,
    scaling_envs=(1, 2, 4, 8),
    scaling_inprocess_envs=(1, 2, 4, 8),
    counterfactual_rounds=101,
    counterfactual_calls=10,
    observation_epochs=20,
)


@dataclass(frozen=True)
class BenchContext:
    """``default_threads``: torch's intra-op thread count before the tool pinned one thread (the in-process env
    backend runs with it, as ``esper train`` does)."""

    quick: bool
    device: torch.device
    profile: bool
    default_threads: int
    sizes: Sizes
    out: Path

    def profile_work(self, work: Work, calls: int, limit: int = 15) -> str:
        """The Python frames (cProfile, by own time) and the torch operators (torch.profiler, by self CPU time)
        that ``calls`` executions of ``work`` spend their time in."""
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            work()
        profiler.disable()
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as operators:
            for _ in range(calls):
                work()
        sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        return (
            f"Python frames (cProfile, {calls} calls):\n{top_frames(pstats.Stats(profiler), limit)}\n"
            f"torch operators (torch.profiler, {calls} calls):\n"
            f"{operators.key_averages().table(sort_by=sort, row_limit=limit, max_name_column_width=48)}"
        )


def top_frames(stats: pstats.Stats, limit: int) -> str:
    """A compact table of the functions with the most own time: own s, cumulative s, calls, function."""
    profile = stats.get_stats_profile()
    functions = sorted(profile.func_profiles.items(), key=lambda item: item[1].tottime, reverse=True)
    total = sum(function.tottime for _, function in functions)
    buffer = io.StringIO()
    buffer.write(f"{'own s':>8} {'cum s':>8} {'calls':>9}  function   (total own time {total:.3f} s)\n")
    for name, function in functions[:limit]:
        label = _short(function.file_name, function.line_number, name)
        buffer.write(f"{function.tottime:8.3f} {function.cumtime:8.3f} {function.ncalls:>9}  {label}\n")
    return buffer.getvalue()


def _short(filename: str, line: int, name: str) -> str:
    if filename == "~":
        return name
    for marker in ("site-packages/", "/src/", "/tools/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{name} ({filename}:{line})"
