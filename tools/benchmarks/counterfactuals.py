"""Benchmark 5, counterfactual batching: the validation pass of a digits model whose plan has K alpha
configurations, with the K configurations fused into one batched forward (K stacked copies of the batch) and
run as K separate forwards (kasmina's ``CounterfactualBatching``), and what ``auto`` picks on this device.

Gated in CI (load-independent): the host forwards of one validation under ``auto`` against the count its choice
implies, and the per-row results of the two batchings being identical. The times are reported; ``--check``
asks that auto's choice is not grossly slower than the other one on this machine."""

from __future__ import annotations

import functools
import resource
import statistics

import torch

from benchmarks.context import BenchContext
from benchmarks.counting import module_calls
from benchmarks.report import BenchmarkResult, Better, Metric, Table
from benchmarks.timing import THREAD_CLOCK, Case, measure, synchronizer
from benchmarks.workloads import DIGITS, StagedModelFactory, digits_env_config, digits_task
from esper.kasmina import CounterfactualBatching, MorphogeneticModel, count_correct
from esper.leyline import SeedStage

#: ``--check``: auto's choice may be at most 1.5x slower than the other batching on this machine (the choice is
#: per device, not per machine; docs/performance.md shows how much the CPU figure moves between machines).
CHOICE_TARGET = 1 / 1.5
#: A fossil in r0c2, a blending seed in r0c1 and a seed in TRAINING in r0c0: plan rows current, two alpha=0
#: rows and one alpha=1 probe (K = 4, the most 3 slots give with one seed of each kind).
SEEDS = ((2, SeedStage.FOSSILIZED), (1, SeedStage.BLENDING), (0, SeedStage.TRAINING))


def _logits(
    model: MorphogeneticModel,
    inputs: torch.Tensor,
    alphas: torch.Tensor,
    batch_size: int,
    batching: CounterfactualBatching,
) -> torch.Tensor:
    """Logits of every plan row over the validation set, [K, N, classes], batched as ``HostTrainingEnv``
    validates."""
    chunks = [
        model.forward_with_alphas(inputs[start : start + batch_size], alphas, batching)
        for start in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(chunks, dim=1)


def _perturb_seeds(model: MorphogeneticModel, generator: torch.Generator) -> None:
    """Seeds start out changing nothing (zero-initialized output); noise on their weights makes every plan row a
    different function, so the rows' agreement between batchings means something."""
    with torch.no_grad():
        for slot in model.slot_config.slot_ids:
            for parameter in model.seed_parameters(slot):
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator).to(parameter))


def _page_faults() -> int:
    """Minor page faults of this thread so far (memory the allocator got back from the kernel and touched)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def forward_scaling(model: MorphogeneticModel, inputs: torch.Tensor, copies: tuple[int, ...], calls: int) -> Table:
    """Why the batching matters on this device: one host forward of 1, 2 ... K copies of the validation set,
    thread CPU time per call (median of ``calls``) and minor page faults per call (on a CPU, the cost that grows
    faster than the batch: buffers the allocator returns to the kernel after each call and faults in again)."""
    rows = []
    for count in copies:
        x = inputs.repeat(count, *([1] * (inputs.dim() - 1)))
        seconds = []
        with torch.no_grad():
            model.host(x)
            faults = _page_faults()
            for _ in range(calls):
                start = THREAD_CLOCK()
                model.host(x)
                seconds.append(THREAD_CLOCK() - start)
            faults = _page_faults() - faults
        median = statistics.median(seconds)
        rows.append(
            (
                str(x.shape[0]),
                f"{median * 1e3:.2f}",
                f"{median * 1e6 / x.shape[0]:.2f}",
                f"{faults / calls:.0f}",
            )
        )
    return Table(
        "One host forward by batch size (thread CPU time, median)",
        ("samples", "ms", "µs / sample", "minor page faults / call"),
        tuple(rows),
    )


def run(ctx: BenchContext) -> BenchmarkResult:
    torch.set_num_threads(1)
    task = digits_task().to(ctx.device)
    config = digits_env_config(ctx.device)
    model = StagedModelFactory(SEEDS)(seed=5)
    _perturb_seeds(model, torch.Generator().manual_seed(5))
    model = model.to(ctx.device)
    model.eval()
    plan = model.counterfactual_plan()
    k = len(plan.rows)
    inputs, targets = task.val_inputs, task.val_targets
    batch_size = config.val_batch_size

    def validate(batching: CounterfactualBatching) -> torch.Tensor:
        """Correct predictions per plan row (the env's validation pass)."""
        return count_correct(_logits(model, inputs, plan.alphas, batch_size, batching), targets)

    fused = _logits(model, inputs, plan.alphas, batch_size, CounterfactualBatching.FUSED)
    separate = _logits(model, inputs, plan.alphas, batch_size, CounterfactualBatching.SEPARATE)
    with module_calls(model.host) as forwards:
        validate(CounterfactualBatching.AUTO)
    choice = CounterfactualBatching.AUTO.resolve(ctx.device)
    other = (
        CounterfactualBatching.FUSED if choice is CounterfactualBatching.SEPARATE else CounterfactualBatching.SEPARATE
    )
    batches = -(-inputs.shape[0] // batch_size)
    expected_forwards = batches * (k if choice is CounterfactualBatching.SEPARATE else 1)

    names = {
        CounterfactualBatching.FUSED: f"fused: one forward of {k} x {inputs.shape[0]} samples",
        CounterfactualBatching.SEPARATE: f"separate: {k} forwards of {inputs.shape[0]} samples",
    }
    cases = [Case.of(name, functools.partial(validate, batching)) for batching, name in names.items()]
    timings = measure(
        cases,
        rounds=ctx.sizes.counterfactual_rounds,
        warmup=2,
        calls=ctx.sizes.counterfactual_calls,
        synchronize=synchronizer(ctx.device),
        clock=THREAD_CLOCK,
    )
    fused_name, separate_name = names[CounterfactualBatching.FUSED], names[CounterfactualBatching.SEPARATE]
    distinct = all(not torch.equal(fused[0], fused[row]) for row in range(1, k))
    agree = distinct * sum(torch.allclose(fused[row], separate[row], rtol=1e-5, atol=1e-6) for row in range(k)) / k
    metrics = (
        Metric(
            "counterfactuals.forwards_per_validation",
            f"host forwards per validation with auto ({choice.value} on {ctx.device.type}) / {expected_forwards}",
            len(forwards) / expected_forwards,
            Better.LOWER,
            bound=1.0,
        ),
        Metric(
            "counterfactuals.rows_agree",
            "plan rows whose logits agree fused and separate (rtol 1e-5; rows distinct) / all rows",
            agree,
            Better.HIGHER,
            bound=1.0,
        ),
        Metric(
            "counterfactuals.fused_speedup",
            f"validation with {k} configurations, separate passes / fused",
            timings.paired_ratio(separate_name, fused_name),
            Better.HIGHER,
        ),
        Metric(
            "counterfactuals.auto_choice",
            f"validation time, {other.value} / auto's choice ({choice.value})",
            timings.paired_ratio(names[other], names[choice]),
            Better.HIGHER,
            target=CHOICE_TARGET,
        ),
    )
    rows = tuple(
        (name, f"{timings.median(name) * 1e3:.2f}", f"{timings.paired_ratio(name, fused_name):.2f}x")
        for name in (fused_name, separate_name)
    )
    notes = (
        f"Plan rows: {', '.join(plan.labels)} (a fossil, a blending seed and a seed in TRAINING, all "
        f"{DIGITS.slots.num_slots} slots wired); {inputs.shape[0]} digits validation images, batch "
        f"{batch_size}; eval mode, no gradients, one torch thread on {ctx.device}; thread CPU time, median of "
        f"{ctx.sizes.counterfactual_rounds} interleaved rounds (ratios: median of the per-round ratios).",
        "Both batchings give the same logits per row (within float rounding); correct per row, fused "
        f"{count_correct(fused, targets).tolist()}, separate {count_correct(separate, targets).tolist()}.",
        f"`auto` runs {choice.value} on {ctx.device.type}: {len(forwards)} host forwards of "
        f"{sorted(set(forwards))} samples for one validation.",
    )
    return BenchmarkResult(
        name="counterfactuals",
        title="5. Counterfactual batching",
        compared="The K alpha configurations of validation fused into one forward against one forward each.",
        metrics=metrics,
        tables=(
            Table("Median time of one validation pass", ("variant", "ms", "vs fused"), rows),
            forward_scaling(model, inputs, (1, 2, k), ctx.sizes.counterfactual_rounds),
        ),
        medians=timings.medians(),
        notes=notes,
    )
