"""Interleaved timing: every case runs once per round, in an order that rotates from round to round, so a burst
of machine load lands on all cases alike and their ratio stays meaningful. Ratios are medians of the per-round
(paired) ratios, never of means. Single-threaded work is timed in thread CPU time (``THREAD_CLOCK``): time spent
descheduled while neighbours run is not counted, only the slowdown they cause while this thread runs.

A case is prepared outside the clock (fresh buffers, env resets) and then timed; on a GPU the device is
synchronized before the clock starts and before it stops.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from esper.leyline import ConfigError

#: One unit of timed work.
Work = Callable[[], object]
#: CPU time of the calling thread: for work that runs on one thread (torch set to one intra-op thread).
THREAD_CLOCK: Callable[[], float] = time.thread_time
#: Wall-clock time: for work spread over threads or processes.
WALL_CLOCK: Callable[[], float] = time.perf_counter


@dataclass(frozen=True)
class Case:
    """``prepare()`` runs untimed and returns the work to time (e.g. refill a buffer, then return the update)."""

    name: str
    prepare: Callable[[], Work]

    @classmethod
    def of(cls, name: str, work: Work) -> Case:
        """A case with nothing to prepare."""
        return cls(name, lambda: work)


@dataclass(frozen=True)
class Timings:
    """Seconds per execution of each case, one sample per round."""

    samples: Mapping[str, tuple[float, ...]]

    def median(self, name: str) -> float:
        return statistics.median(self.samples_of(name))

    def ratio(self, numerator: str, denominator: str) -> float:
        """median(numerator) / median(denominator): how many times slower the numerator case is."""
        return self.median(numerator) / self.median(denominator)

    def paired_ratio(self, numerator: str, denominator: str) -> float:
        """The median over rounds of numerator / denominator within each round: a load burst that slows one
        round slows both cases of that round, so it cancels in the round's ratio and the median drops the
        rounds it did not cancel in."""
        pairs = zip(self.samples_of(numerator), self.samples_of(denominator), strict=True)
        return statistics.median(a / b if b > 0 else float("inf") for a, b in pairs)

    def samples_of(self, name: str) -> tuple[float, ...]:
        if name not in self.samples:
            raise ConfigError(f"no timings for case {name!r}; cases: {sorted(self.samples)}")
        return self.samples[name]

    def medians(self) -> dict[str, float]:
        return {name: self.median(name) for name in self.samples}


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for queued GPU work (timings of asynchronous kernels are meaningless otherwise); no-op on CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def measure(
    cases: Sequence[Case],
    *,
    rounds: int,
    warmup: int = 1,
    calls: int = 1,
    synchronize: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = WALL_CLOCK,
) -> Timings:
    """Run ``warmup`` untimed rounds, then ``rounds`` timed ones. A sample is the time of ``calls`` back-to-back
    executions of the prepared work divided by ``calls`` (for work too short to time one call at a time).
    Round ``r`` starts with case ``r mod len(cases)``."""
    if not cases:
        raise ConfigError("measure needs at least one case")
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ConfigError(f"case names must be unique, got {names}")
    if rounds < 1 or warmup < 0 or calls < 1:
        raise ConfigError(f"need rounds >= 1, warmup >= 0 and calls >= 1, got {rounds}, {warmup}, {calls}")
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        shift = round_index % len(cases)
        for case in (*cases[shift:], *cases[:shift]):
            work = case.prepare()
            synchronize()
            start = clock()
            for _ in range(calls):
                work()
            synchronize()
            elapsed = (clock() - start) / calls
            if round_index >= warmup:
                samples[case.name].append(elapsed)
    return Timings({name: tuple(values) for name, values in samples.items()})
