"""Benchmark 1, host-epoch overhead: one RL step of a digits env (``HostTrainingEnv.step(WAIT)``: tick, one
training epoch, the validation pass with its fused counterfactuals, the governor, reward and observation)
against the limit, a bare PyTorch loop that trains the same CNN host (same init, same SGD settings, same
gradient clipping, same batches in the same order) for one epoch and validates it once.

Esper is measured with its slots empty (the target: at most 1.10x the bare loop), with one seed in TRAINING
and with one fossilized seed (the seeds' cost, reported against the empty-slot env).

Gated in CI (load-independent): the host forwards of every env step against the count the epoch implies
(training minibatches + validation batches x the counterfactual rows run separately), and the torch operators
of an env step against the bare loop's. The time ratio has a gross CI bound only; its target is for ``--check``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.context import BenchContext
from benchmarks.counting import module_calls, torch_operators
from benchmarks.report import BenchmarkResult, Better, Metric, Table
from benchmarks.timing import THREAD_CLOCK, Case, measure, synchronizer
from benchmarks.workloads import (
    BENCH_BLUEPRINT,
    DIGITS,
    StagedModelFactory,
    digits_env_config,
    digits_factory,
    digits_host,
    digits_task,
    running_env_case,
)
from esper.kasmina import CNNHost, CounterfactualBatching
from esper.leyline import FactoredAction, SeedStage
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.task_data import TaskData

EPISODE_SEED = 7
#: The slot the seeded variants use (r0c1: after the second block, 2 channels at 4x4).
SEED_SLOT = 1
TARGET = 1.10
#: A gross bound: the paired thread-time ratio of two near-identical workloads; no load moves it this far.
BOUND = 2.5
#: Torch operators of 3 env steps with empty slots / of 3 bare epochs, measured (2779 / 2747) with torch 2.15 (the
#: governor's checks, the observation and the reward add operators the bare loop does not run); CI allows 25 %
#: above it before it calls it a regression (the op-count gate catches added work per minibatch or per epoch).
OPS_BASELINE = 1.01
OPS_MARGIN = 1.25
COUNT_STEPS = 3


class BareLoop:
    """The limit: plain PyTorch on the same host, optimizer settings, batches and validation set."""

    def __init__(self, task: TaskData, config: EnvConfig, seed: int) -> None:
        self.task = task.to(torch.device(config.device))
        self.config = config
        self.host = CNNHost.create(digits_host().config, torch.Generator().manual_seed(seed)).to(config.device)
        self.optimizer = torch.optim.SGD(
            self.host.parameters(), lr=config.host_lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.parameters = list(self.host.parameters())
        self.data_generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def run_epoch(self) -> tuple[float, float, float]:
        """Train one epoch, then validate: (train loss, validation loss, validation accuracy %)."""
        config = self.config
        task = self.task
        device = task.train_inputs.device
        n = task.train_inputs.shape[0]
        order = torch.randperm(n, generator=self.data_generator).to(device)
        for group in self.optimizer.param_groups:
            group["lr"] = config.host_lr * config.lr_factor(self.epoch)
        total = torch.zeros((), device=device)
        seen = 0
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            if index.numel() < 2:
                continue
            loss = F.cross_entropy(self.host(task.train_inputs[index]), task.train_targets[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.parameters, config.grad_clip)
            self.optimizer.step()
            total += loss.detach() * index.numel()
            seen += index.numel()
        self.epoch = (self.epoch + 1) % config.max_epochs
        val_loss, val_accuracy = self._validate()
        return float(total) / max(seen, 1), val_loss, val_accuracy

    def _validate(self) -> tuple[float, float]:
        task = self.task
        n = task.val_inputs.shape[0]
        correct = torch.zeros((), dtype=torch.int64, device=task.val_inputs.device)
        loss_sum = torch.zeros((), device=task.val_inputs.device)
        self.host.eval()
        try:
            with torch.no_grad():
                for start in range(0, n, self.config.val_batch_size):
                    inputs = task.val_inputs[start : start + self.config.val_batch_size]
                    targets = task.val_targets[start : start + self.config.val_batch_size]
                    logits = self.host(inputs)
                    correct += (logits.argmax(dim=-1) == targets).sum()
                    loss_sum += F.cross_entropy(logits, targets, reduction="sum")
        finally:
            self.host.train()
        return float(loss_sum) / n, float(correct) * 100.0 / n


def count_work(task: TaskData, config: EnvConfig) -> tuple[tuple[Metric, Metric], Table]:
    """The CI gates: host forwards per env step (every variant and the bare loop) against the expected count,
    and the torch operators of env steps against bare epochs, over ``COUNT_STEPS`` steps of fresh envs."""
    n_train, n_val, n_test = task.train_inputs.shape[0], task.val_inputs.shape[0], task.test_inputs.shape[0]
    train_batches = sum(1 for start in range(0, n_train, config.batch_size) if n_train - start >= 2)
    val_batches = -(-n_val // config.val_batch_size)
    test_batches = -(-n_test // config.val_batch_size)  # once per episode, on its terminal step
    separate = (
        CounterfactualBatching(config.counterfactual_batching).resolve(torch.device(config.device))
        is CounterfactualBatching.SEPARATE
    )
    rows: list[tuple[str, ...]] = []
    counted = expected = 0
    bare = BareLoop(task, config, EPISODE_SEED)
    with module_calls(bare.host) as forwards:
        for _ in range(COUNT_STEPS):
            bare.run_epoch()
    rows.append(("bare PyTorch loop", f"{len(forwards) / COUNT_STEPS:g}", f"{train_batches + val_batches}"))
    counted += len(forwards)
    expected += COUNT_STEPS * (train_batches + val_batches)
    wait = FactoredAction.wait()
    for name, factory in _factories():
        env = HostTrainingEnv(task, factory, config)
        env.reset(EPISODE_SEED)
        env_counted = env_expected = 0
        for _ in range(COUNT_STEPS):
            with module_calls(env.model.host) as forwards:
                result = env.step(wait)
            plan_rows = len(env.model.counterfactual_plan().rows)
            validations = 2 if result.rolled_back else 1  # a rollback validates the restored model again
            env_counted += len(forwards)
            env_expected += train_batches + validations * val_batches * (plan_rows if separate else 1)
            env_expected += test_batches if result.terminal else 0
        rows.append((name, f"{env_counted / COUNT_STEPS:g}", f"{env_expected / COUNT_STEPS:g}"))
        counted += env_counted
        expected += env_expected
    env = HostTrainingEnv(task, digits_factory(), config)
    env.reset(EPISODE_SEED)
    esper_ops = torch_operators(lambda: env.step(wait), calls=COUNT_STEPS)
    bare_ops = torch_operators(BareLoop(task, config, EPISODE_SEED).run_epoch, calls=COUNT_STEPS)
    rows.append(("torch operators: env step (slots empty) / bare epoch", f"{esper_ops:.0f} / {bare_ops:.0f}", "-"))
    forwards_metric = Metric(
        "host_overhead.forwards_per_step",
        f"host forwards per epoch / expected ({train_batches} minibatches + {val_batches} validation x rows)",
        counted / expected,
        Better.LOWER,
        bound=1.0,
    )
    ops_metric = Metric(
        "host_overhead.torch_ops",
        f"torch operators per env step (slots empty) / per bare epoch, CI bound {OPS_MARGIN:g} x {OPS_BASELINE:g}",
        esper_ops / bare_ops,
        Better.LOWER,
        bound=OPS_BASELINE * OPS_MARGIN,
    )
    table = Table(
        f"Work per epoch ({COUNT_STEPS} epochs from a reset)", ("case", "host forwards", "expected"), tuple(rows)
    )
    return (forwards_metric, ops_metric), table


def _factories() -> tuple[tuple[str, ModelFactory], ...]:
    return (
        ("esper, slots empty", digits_factory()),
        ("esper, one seed in TRAINING", StagedModelFactory(((SEED_SLOT, SeedStage.TRAINING),))),
        ("esper, one fossilized seed", StagedModelFactory(((SEED_SLOT, SeedStage.FOSSILIZED),))),
    )


def run(ctx: BenchContext) -> BenchmarkResult:
    torch.set_num_threads(1)
    task = digits_task().to(ctx.device)  # once, shared by every case (as an env pool shares it)
    config = digits_env_config(ctx.device)
    count_metrics, count_table = count_work(task, config)
    bare = BareLoop(task, config, EPISODE_SEED)
    (empty, empty_work), (training, _), (fossil, _) = (
        running_env_case(name, task, factory, config, EPISODE_SEED) for name, factory in _factories()
    )
    cases = [Case.of("bare PyTorch loop", bare.run_epoch), empty, training, fossil]
    timings = measure(
        cases,
        rounds=ctx.sizes.host_rounds,
        warmup=ctx.sizes.host_warmup,
        synchronize=synchronizer(ctx.device),
        clock=THREAD_CLOCK,
    )
    bare_name = cases[0].name
    overhead = Metric(
        "host_overhead.empty_slots",
        "env epoch, slots empty / bare loop",
        timings.paired_ratio(empty.name, bare_name),
        Better.LOWER,
        target=TARGET,
        bound=BOUND,
    )
    metrics = (
        *count_metrics,
        overhead,
        Metric(
            "host_overhead.training_seed",
            "env epoch, one TRAINING seed / slots empty",
            timings.paired_ratio(training.name, empty.name),
            Better.LOWER,
        ),
        Metric(
            "host_overhead.fossilized_seed",
            "env epoch, one fossilized seed / slots empty",
            timings.paired_ratio(fossil.name, empty.name),
            Better.LOWER,
        ),
    )
    rows = tuple(
        (
            case.name,
            f"{timings.median(case.name) * 1e3:.1f}",
            f"{timings.paired_ratio(case.name, bare_name):.3f}x",
            f"{timings.paired_ratio(case.name, empty.name):.3f}x",
        )
        for case in cases
    )
    n_train = task.train_inputs.shape[0]
    notes = (
        f"One epoch = {-(-n_train // config.batch_size)} minibatches of {config.batch_size} over {n_train} "
        f"training images, then one validation pass over {task.val_inputs.shape[0]} images "
        f"(batch {config.val_batch_size}); SGD lr {config.host_lr} (cosine over {config.max_epochs} epochs), "
        f"momentum {config.momentum}, gradient clip {config.grad_clip}; one torch thread on {ctx.device}; thread "
        f"CPU time, median of {ctx.sizes.host_rounds} interleaved rounds (ratios: median of per-round ratios).",
        "The env epoch also holds everything an RL step does besides training: the action (WAIT), the slots' "
        "tick, the counterfactual plan and its fused validation, the governor's check (and its snapshot every "
        "5 epochs), the reward and the observation with its slot reports.",
        f"Seeded variants: a {BENCH_BLUEPRINT.registry_name} seed (linear add) in slot "
        f"{DIGITS.slots.slot_ids[SEED_SLOT]}; in TRAINING it runs forward and backward with its own optimizer "
        "and adds an alpha=1 probe row to validation; fossilized it is blended at alpha 1 and still trained.",
    )
    profile = None
    if ctx.profile and overhead.target_met is False:
        profile = ctx.profile_work(empty_work, calls=20)
    return BenchmarkResult(
        name="host_overhead",
        title="1. Host-epoch overhead",
        compared="An Esper env epoch against a bare PyTorch loop on the same host, batches and validation set.",
        metrics=metrics,
        tables=(
            Table("Median time per epoch", ("case", "ms / epoch", "vs bare loop", "vs slots empty"), rows),
            count_table,
        ),
        medians=timings.medians(),
        notes=notes,
        profile=profile,
    )
