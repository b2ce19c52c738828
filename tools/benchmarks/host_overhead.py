"""Benchmark 1, host-epoch overhead: one RL step of a digits env (``HostTrainingEnv.step(WAIT)``: tick, one
training epoch, the validation pass with its fused counterfactuals, the governor, reward and observation)
against the limit, a bare PyTorch loop that trains the same CNN host (same init, same SGD settings, same
gradient clipping, same batches in the same order) for one epoch and validates it once.

Esper is measured with its slots empty (the target: at most 1.10x the bare loop), with one seed in TRAINING
and with one fossilized seed (the seeds' cost, reported against the empty-slot env)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.context import BenchContext
from benchmarks.report import BenchmarkResult, Better, Metric, Table
from benchmarks.timing import Case, Work, measure, synchronizer
from benchmarks.workloads import (
    BENCH_BLUEPRINT,
    DIGITS,
    StagedModelFactory,
    digits_env_config,
    digits_factory,
    digits_task,
)
from esper.kasmina import CNNHost
from esper.leyline import FactoredAction, SeedStage
from esper.simic.env import HostTrainingEnv
from esper.simic.env_config import EnvConfig
from esper.simic.model_factories import ModelFactory
from esper.simic.task_data import TaskData

EPISODE_SEED = 7
#: The slot the seeded variants use (r0c1: after the second block, 2 channels at 4x4).
SEED_SLOT = 1
TARGET = 1.10
BOUND = 1.5


class BareLoop:
    """The limit: plain PyTorch on the same host, optimizer settings, batches and validation set."""

    def __init__(self, task: TaskData, config: EnvConfig, seed: int) -> None:
        self.task = task.to(torch.device(config.device))
        self.config = config
        self.host = CNNHost.create(DIGITS.host, torch.Generator().manual_seed(seed)).to(config.device)
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


def _env_case(name: str, task: TaskData, factory: ModelFactory, config: EnvConfig) -> tuple[Case, Work]:
    """A running env; an episode that ends (after ``max_epochs`` or a rollback) restarts outside the clock."""
    env = HostTrainingEnv(task, factory, config)
    env.reset(EPISODE_SEED)
    wait = FactoredAction.wait()

    def step() -> object:
        return env.step(wait)

    def prepare() -> Work:
        if env.done:
            env.reset(EPISODE_SEED)
        return step

    return Case(name, prepare), step


def run(ctx: BenchContext) -> BenchmarkResult:
    torch.set_num_threads(1)
    task = digits_task()
    config = digits_env_config(ctx.device)
    bare = BareLoop(task, config, EPISODE_SEED)
    empty, empty_work = _env_case("esper, slots empty", task, digits_factory(), config)
    training, _ = _env_case(
        "esper, one seed in TRAINING", task, StagedModelFactory(((SEED_SLOT, SeedStage.TRAINING),)), config
    )
    fossil, _ = _env_case(
        "esper, one fossilized seed", task, StagedModelFactory(((SEED_SLOT, SeedStage.FOSSILIZED),)), config
    )
    cases = [Case.of("bare PyTorch loop", bare.run_epoch), empty, training, fossil]
    timings = measure(
        cases, rounds=ctx.sizes.host_rounds, warmup=ctx.sizes.host_warmup, synchronize=synchronizer(ctx.device)
    )
    bare_name = cases[0].name
    overhead = Metric(
        "host_overhead.empty_slots",
        "env epoch, slots empty / bare loop",
        timings.ratio(empty.name, bare_name),
        Better.LOWER,
        target=TARGET,
        bound=BOUND,
    )
    metrics = (
        overhead,
        Metric(
            "host_overhead.training_seed",
            "env epoch, one TRAINING seed / slots empty",
            timings.ratio(training.name, empty.name),
            Better.LOWER,
        ),
        Metric(
            "host_overhead.fossilized_seed",
            "env epoch, one fossilized seed / slots empty",
            timings.ratio(fossil.name, empty.name),
            Better.LOWER,
        ),
    )
    rows = tuple(
        (
            case.name,
            f"{timings.median(case.name) * 1e3:.1f}",
            f"{timings.ratio(case.name, bare_name):.3f}x",
            f"{timings.ratio(case.name, empty.name):.3f}x",
        )
        for case in cases
    )
    n_train = task.train_inputs.shape[0]
    notes = (
        f"One epoch = {-(-n_train // config.batch_size)} minibatches of {config.batch_size} over {n_train} "
        f"training images, then one validation pass over {task.val_inputs.shape[0]} images "
        f"(batch {config.val_batch_size}); SGD lr {config.host_lr} (cosine over {config.max_epochs} epochs), "
        f"momentum {config.momentum}, gradient clip {config.grad_clip}; one torch thread on {ctx.device}.",
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
        tables=(Table("Median time per epoch", ("case", "ms / epoch", "vs bare loop", "vs slots empty"), rows),),
        medians=timings.medians(),
        notes=notes,
        profile=profile,
    )
