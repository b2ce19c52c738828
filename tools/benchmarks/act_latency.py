"""Benchmark 2, controller act latency: what one decision step of the default learned controller costs for 1, 8
and 64 envs on one CPU thread: ``bundle.encode`` (features and action masks from leyline observations) plus
``bundle.get_action`` (the LSTM step and masked sampling of every head). Target: at most 2 ms per call at 8 envs.

The observations are real: digits envs driven by the random-valid controller (seeds in every stage)."""

from __future__ import annotations

import torch

from benchmarks.context import BenchContext
from benchmarks.report import BenchmarkResult, Better, Metric, Table
from benchmarks.timing import Case, Work, measure, synchronizer
from benchmarks.workloads import DIGITS, collect_observations
from esper.leyline import EnvObservation, PolicyBundle
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import create_policy, register_builtin_policies

BATCHES = (1, 8, 64)
TARGET_MS = 2.0
#: The metric is latency / target; the CI bound allows 3x the target before it calls it a regression.
BOUND = 3.0


def _pick(observations: list[EnvObservation], count: int) -> list[EnvObservation]:
    """``count`` observations spread over the collected ones (late ones first: they carry seeds)."""
    ordered = observations[::-1]
    step = max(1, len(ordered) // count)
    return [ordered[(index * step) % len(ordered)] for index in range(count)]


def _cases(bundle: PolicyBundle, observations: list[EnvObservation], n: int) -> tuple[list[Case], Work]:
    batch = _pick(observations, n)
    hidden = bundle.initial_hidden(n)
    generator = torch.Generator(device=bundle.device).manual_seed(n)
    encoded = bundle.encode(batch)
    controller = PolicyController(bundle, generator=torch.Generator(device=bundle.device).manual_seed(n))
    controller.start_episodes(n)
    env_ids = list(range(n))

    def encode_and_act() -> object:
        return bundle.get_action(bundle.encode(batch), hidden, False, generator)

    def act_only() -> object:
        return bundle.get_action(encoded, hidden, False, generator)

    def controller_act() -> object:
        return controller.act(env_ids, batch)

    def encode_only() -> object:
        return bundle.encode(batch)

    cases = [
        _steady(f"encode + get_action, {n} envs", encode_and_act),
        _steady(f"encode, {n} envs", encode_only),
        _steady(f"get_action, {n} envs", act_only),
        _steady(f"PolicyController.act, {n} envs", controller_act),
    ]
    return cases, encode_and_act


def _steady(name: str, work: Work) -> Case:
    """Steady-state latency: one untimed call right before the timed ones, so the other cases interleaved
    with this one (64-env batches...) do not leave their caches and allocator state on its clock."""

    def prepare() -> Work:
        work()
        return work

    return Case(name, prepare)


def run(ctx: BenchContext) -> BenchmarkResult:
    torch.set_num_threads(1)
    observations = collect_observations(n_envs=4, epochs=ctx.sizes.observation_epochs, seed=11)
    register_builtin_policies()
    bundle = create_policy("lstm", DIGITS.slots, device=ctx.device)
    cases: list[Case] = []
    profiled: dict[int, Work] = {}
    for n in BATCHES:
        batch_cases, work = _cases(bundle, observations, n)
        cases += batch_cases
        profiled[n] = work
    timings = measure(
        cases,
        rounds=ctx.sizes.act_rounds,
        warmup=2,
        calls=ctx.sizes.act_calls,
        synchronize=synchronizer(ctx.device),
    )

    def ms(name: str) -> float:
        return timings.median(name) * 1e3

    metric = Metric(
        "act_latency.8_envs",
        f"act latency at 8 envs / {TARGET_MS:g} ms",
        ms("encode + get_action, 8 envs") / TARGET_MS,
        Better.LOWER,
        target=1.0,
        bound=BOUND,
    )
    rows = tuple(
        (
            str(n),
            f"{ms(f'encode + get_action, {n} envs'):.3f}",
            f"{ms(f'encode + get_action, {n} envs') * 1e3 / n:.0f}",
            f"{ms(f'encode, {n} envs'):.3f}",
            f"{ms(f'get_action, {n} envs'):.3f}",
            f"{ms(f'PolicyController.act, {n} envs'):.3f}",
        )
        for n in BATCHES
    )
    stages = sorted({slot.stage.name for obs in observations for slot in obs.slots})
    sizes = bundle.build_config()["sizes"]
    notes = (
        f"Default policy: `create_policy('lstm', {list(DIGITS.slots.names())})`, sizes {sizes}, "
        f"{sum(p.numel() for p in bundle.parameters())} parameters, sampling (not argmax), on {ctx.device} with "
        "one torch thread.",
        f"{len(observations)} observations from 4 digits envs x {ctx.sizes.observation_epochs} epochs under the "
        f"random-valid controller (slot stages seen: {', '.join(stages)}); a batch of n takes n of them.",
        "`PolicyController.act` is the whole step the vectorized loop pays: encode, get_action, the per-env "
        "hidden-state gather/scatter and decoding the sampled indices into FactoredActions.",
        f"Median of {ctx.sizes.act_rounds} interleaved rounds, each the mean of {ctx.sizes.act_calls} calls "
        "after one untimed call (steady state).",
    )
    profile = None
    if ctx.profile and metric.target_met is False:
        profile = ctx.profile_work(profiled[8], calls=500)
    return BenchmarkResult(
        name="act_latency",
        title="2. Controller act latency",
        compared="encode + masks + get_action of the default LSTM policy per call, against a 2 ms budget at 8 envs.",
        metrics=(metric,),
        tables=(
            Table(
                "Median latency per call (ms)",
                ("envs", "encode + get_action", "per env (µs)", "encode", "get_action", "PolicyController.act"),
                rows,
            ),
        ),
        medians=timings.medians(),
        notes=notes,
        profile=profile,
    )
