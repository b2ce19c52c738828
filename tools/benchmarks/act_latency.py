"""Benchmark 2, controller act latency: what one decision step of the default learned controller costs for 1, 8
and 64 envs on one thread: ``bundle.encode`` (features and action masks from leyline observations) plus
``bundle.get_action`` (the LSTM step and masked sampling of every head).

The observations are real: digits envs driven by the random-valid controller (seeds in every stage).

The limit is the policy network's own forward on already built input tensors, timed in the same interleaved
rounds: ``encode + get_action`` is reported as a paired ratio to it at 1, 8 and 64 envs (issue 19's targets, for
``--check``: at most 2x at 8 envs and 3x at 64). Gated in CI (load-independent): the torch operators and the
Python function calls of one act call at 8 envs against committed baselines (a regression that repeats or adds
work multiplies them). The absolute latency at 8 envs is also reported against a 2 ms budget."""

from __future__ import annotations

import torch

from benchmarks.act_parts import PARTS, part_cases, replaced
from benchmarks.context import QUICK, BenchContext
from benchmarks.counting import python_calls, torch_operators
from benchmarks.report import BenchmarkResult, Better, Metric, Table
from benchmarks.timing import THREAD_CLOCK, Case, Timings, Work, measure, synchronizer
from benchmarks.workloads import DIGITS, collect_observations
from esper.leyline import EnvObservation, PolicyBundle
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import LSTMPolicyBundle, create_policy, register_builtin_policies

BATCHES = (1, 8, 64)
TARGET_MS = 2.0
#: ``encode + get_action`` / the network's forward, at most (issue 19): the acting path may cost its network
#: twice at 8 envs and three times at 64.
RATIO_TARGETS = {8: 2.0, 64: 3.0}
#: Work of one ``encode`` + ``get_action`` at 8 envs on the counting observations (4 envs x 8 epochs, seed 11),
#: measured with torch 2.15: torch operators and Python function calls. CI allows 50 % above them; a change that
#: really needs more work updates them here (issue 19's vectorized encoding, table-driven masks and host-side
#: sampling took them from 180 / 1,208 to 115 / 277; its second pass, one log-softmax and one noise draw for
#: all heads, whole-row mask lookups and the candidate index kept per device, to 102 / 264; its third, features,
#: condition codes and the factored draw as compiled loops and the noise from a float64 uniform, to 98 / 193; its
#: fourth, stacked per-head tensors at the leyline seam, masks as one row, the noise transformed inside the draw
#: and the per-env counts read with the env numbers, to 73 / 145).
OPS_BASELINE = 73.0
CALLS_BASELINE = 145.0
MARGIN = 1.5
COUNT_ENVS = 8
#: Batch sizes of the ``--profile`` breakdown by part (the two with targets).
PART_BATCHES = (8, 64)
LATENCY_COLUMNS = (
    "envs",
    "encode + get_action",
    "per env (µs)",
    "encode",
    "get_action",
    "PolicyController.act",
    "network forward",
    "encode + get_action / network",
)


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


def counting_observations() -> list[EnvObservation]:
    """The observations the CI counts are made on: fixed, whatever the run's size."""
    return collect_observations(n_envs=4, epochs=QUICK.observation_epochs, seed=11)


def count_work(bundle: PolicyBundle, observations: list[EnvObservation]) -> tuple[Metric, Metric]:
    """The CI gates: torch operators and Python calls of one encode + get_action at ``COUNT_ENVS`` envs, each
    against its baseline (after one untimed call, so one-time caches are warm)."""
    batch = _pick(observations, COUNT_ENVS)
    hidden = bundle.initial_hidden(COUNT_ENVS)
    generator = torch.Generator(device=bundle.device).manual_seed(COUNT_ENVS)

    def act() -> object:
        return bundle.get_action(bundle.encode(batch), hidden, False, generator)

    act()
    operators = torch_operators(act, calls=3)
    calls = python_calls(act, calls=3)
    return (
        Metric(
            "act_latency.torch_ops",
            f"torch operators per act call at {COUNT_ENVS} envs ({operators:.0f}) / baseline {OPS_BASELINE:g}",
            operators / OPS_BASELINE,
            Better.LOWER,
            bound=MARGIN,
        ),
        Metric(
            "act_latency.python_calls",
            f"Python calls per act call at {COUNT_ENVS} envs ({calls:.0f}) / baseline {CALLS_BASELINE:g}",
            calls / CALLS_BASELINE,
            Better.LOWER,
            bound=MARGIN,
        ),
    )


def _network_case(bundle: LSTMPolicyBundle, observations: list[EnvObservation], n: int) -> Case:
    """The policy network's own forward for ``n`` envs (one step, inference mode): what acting cannot beat."""
    encoded = bundle.encode(_pick(observations, n))
    features = encoded.inputs["features"].unsqueeze(1)
    blueprints = encoded.inputs["blueprint_indices"].unsqueeze(1)
    hidden = bundle.initial_hidden(n)

    def forward() -> object:
        with torch.inference_mode():
            return bundle.network(features, blueprints, hidden)

    return _steady(f"network forward, {n} envs", forward)


def _measure(ctx: BenchContext, cases: list[Case]) -> Timings:
    """Interleaved rounds in thread CPU time, each the mean of ``act_calls`` calls (benchmark 2's settings)."""
    return measure(
        cases,
        rounds=ctx.sizes.act_rounds,
        warmup=2,
        calls=ctx.sizes.act_calls,
        synchronize=synchronizer(ctx.device),
        clock=THREAD_CLOCK,
    )


def _parts_table(ctx: BenchContext, bundle: LSTMPolicyBundle, observations: list[EnvObservation]) -> Table:
    """``--profile``: the act call at 8 and 64 envs with each part replaced by its result (``act_parts``), paired
    with the network's forward in the same rounds."""
    cases: list[Case] = []
    for n in PART_BATCHES:
        cases += [*part_cases(bundle, _pick(observations, n), _steady), _network_case(bundle, observations, n)]
    timings = _measure(ctx, cases)
    rows = []
    for name, part in (("", "nothing"), *PARTS.items(), ("all", "all four")):
        row = [part]
        for n in PART_BATCHES:
            case = replaced(name, n)
            row += [
                f"{timings.median(case) * 1e3:.3f}",
                f"{timings.paired_ratio(case, f'network forward, {n} envs'):.2f}x",
            ]
        rows.append(tuple(row))
    columns = ["replaced by its precomputed result"]
    for n in PART_BATCHES:
        columns += [f"act ms, {n} envs", f"/ network, {n} envs"]
    return Table(
        "Where an act call's time goes in context (encode + get_action with one part replaced)",
        tuple(columns),
        tuple(rows),
    )


def run(ctx: BenchContext) -> BenchmarkResult:
    torch.set_num_threads(1)
    observations = collect_observations(n_envs=4, epochs=ctx.sizes.observation_epochs, seed=11)
    register_builtin_policies()
    bundle = create_policy("lstm", DIGITS.slots, device=ctx.device)
    if not isinstance(bundle, LSTMPolicyBundle):
        raise TypeError(f"the default policy is an LSTMPolicyBundle, got {type(bundle).__name__}")
    counted = observations if ctx.sizes.observation_epochs == QUICK.observation_epochs else counting_observations()
    count_metrics = count_work(bundle, counted)
    cases: list[Case] = []
    profiled: dict[int, Work] = {}
    for n in BATCHES:
        batch_cases, work = _cases(bundle, observations, n)
        cases += [*batch_cases, _network_case(bundle, observations, n)]
        profiled[n] = work
    timings = _measure(ctx, cases)

    def ms(name: str) -> float:
        return timings.median(name) * 1e3

    metric = Metric(
        "act_latency.8_envs",
        f"act latency at 8 envs / {TARGET_MS:g} ms",
        ms("encode + get_action, 8 envs") / TARGET_MS,
        Better.LOWER,
        target=1.0,
    )
    ratios = {n: timings.paired_ratio(f"encode + get_action, {n} envs", f"network forward, {n} envs") for n in BATCHES}
    versus_network = tuple(
        Metric(
            f"act_latency.vs_network_{n}_envs",
            f"encode + get_action at {n} envs / the policy network's forward at {n} envs",
            ratios[n],
            Better.LOWER,
            target=RATIO_TARGETS.get(n),
        )
        for n in BATCHES
    )
    rows = tuple(
        (
            str(n),
            f"{ms(f'encode + get_action, {n} envs'):.3f}",
            f"{ms(f'encode + get_action, {n} envs') * 1e3 / n:.0f}",
            f"{ms(f'encode, {n} envs'):.3f}",
            f"{ms(f'get_action, {n} envs'):.3f}",
            f"{ms(f'PolicyController.act, {n} envs'):.3f}",
            f"{ms(f'network forward, {n} envs'):.3f}",
            f"{ratios[n]:.2f}x",
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
        f"Thread CPU time: median of {ctx.sizes.act_rounds} interleaved rounds, each the mean of "
        f"{ctx.sizes.act_calls} calls after one untimed call (steady state). 'network forward' is the policy "
        "network alone (normalizer, embedding, trunk, LSTM step, heads) on already encoded features; the ratio "
        "column is the median of the per-round ratios.",
    )
    profile = None
    tables = [Table("Median latency per call (ms)", LATENCY_COLUMNS, rows)]
    if ctx.profile:  # the per-part breakdown always (docs/performance.md keeps it), the frames when missed
        tables.append(_parts_table(ctx, bundle, observations))
        if metric.target_met is False or any(m.target_met is False for m in versus_network):
            profile = ctx.profile_work(profiled[8], calls=500)
    return BenchmarkResult(
        name="act_latency",
        title="2. Controller act latency",
        compared="encode + masks + get_action of the default LSTM policy per call, against the policy network's own "
        "forward (paired, same rounds) and a 2 ms budget at 8 envs.",
        metrics=(*count_metrics, metric, *versus_network),
        tables=tuple(tables),
        medians=timings.medians(),
        notes=notes,
        profile=profile,
    )
