"""One host-training environment: a morphogenetic model trained on a task for a fixed number of epochs.

RL step t (``step(action)``): execute the controller's action through kasmina, tick every slot once, train one
epoch (the full training set, or ``EnvConfig.epoch_examples`` of it, in episode-seeded order), validate once
with every counterfactual configuration, let the governor judge the epoch, then compute the reward (accuracy
gained by this epoch minus seed rent) and the next observation. Accuracy and loss count every target position:
a language model's accuracy is its next-token accuracy. ``reset(seed)`` builds a fresh model and observes the
untrained host (epoch 0), so every one of the ``max_epochs`` decisions affects training. The counterfactual
configurations run fused or as separate forwards as ``EnvConfig.counterfactual_batching`` says (the same
results either way).

After a rollback the restored model is validated again and the episode ends with it: its accuracy is the last
epoch's, in the reward, the curve and the summary.

Everything the controller, the reward, the gates and the governor see comes from the validation set. The test
set is evaluated exactly once per episode, after the final step (its action and any rollback included), on the
model the episode ends with; its accuracy appears only in the episode summary.
"""

from __future__ import annotations

import math
from collections import Counter, deque

import torch
import torch.nn.functional as F

from esper.kasmina import CounterfactualBatching, Governor, GovernorConfig, MorphogeneticModel, count_correct
from esper.leyline import (
    FAILURE_STAGES,
    HISTORY_LENGTH,
    LIVE_STAGES,
    ConfigError,
    EnvObservation,
    FactoredAction,
    InvalidStateMachineError,
    LastAction,
    LifecycleOp,
    SeedStage,
    SlotReport,
    refusal,
)
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import EpisodeSummary, LifecycleEvent, SeedAtEnd, StepResult
from esper.simic.envs.heap_buffers import keep_large_buffers_in_heap
from esper.simic.envs.model_factories import ModelFactory
from esper.simic.envs.rewards import rollback_reward, step_reward
from esper.simic.envs.task_data import TaskData


class HostTrainingEnv:
    """Not thread-safe; one instance per env. ``reset`` must be called before ``step``. The task must already be
    on the env's device and is only read, so the envs of a pool share one copy (the pool places it once)."""

    def __init__(self, task: TaskData, model_factory: ModelFactory, config: EnvConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)
        keep_large_buffers_in_heap()
        placed = task.train_inputs.device
        if placed.type != self.device.type or self.device.index not in (None, placed.index):
            raise ConfigError(f"the task's tensors are on {placed}, the env runs on {self.device}: move it first")
        self.task = task
        self.model_factory = model_factory
        self._batching = CounterfactualBatching(config.counterfactual_batching)
        self._model: MorphogeneticModel | None = None
        self._governor: Governor | None = None
        self._done = True

    # ------------------------------------------------------------------------------------------- episode API
    @property
    def model(self) -> MorphogeneticModel:
        if self._model is None:
            raise InvalidStateMachineError("the environment has no model yet: call reset(seed) first")
        return self._model

    @property
    def done(self) -> bool:
        return self._done

    def reset(self, seed: int) -> EnvObservation:
        """Start an episode: the seed fixes host and seed initialization and the data order."""
        self._seed = seed
        self._model = self.model_factory(seed).to(self.device)
        self._model.train()
        self._data_generator = torch.Generator().manual_seed(seed)
        self._governor = Governor(self._model, GovernorConfig(num_classes=self.task.num_classes))
        self._host_optimizer = self._optimizer(list(self._model.host_parameters()), self.config.host_lr)
        self._seed_optimizers: dict[int, tuple[tuple[int, ...], torch.optim.Optimizer]] = {}
        self._seed_param_version = -1
        self._sync_seed_optimizers()
        self._epoch = 0
        self._germinations = 0
        self._loss_history: deque[float] = deque(maxlen=HISTORY_LENGTH)
        self._accuracy_history: deque[float] = deque(maxlen=HISTORY_LENGTH)
        self._last_action: LastAction | None = None
        self._events: list[LifecycleEvent] = []
        self._op_counts: Counter[str] = Counter()
        self._invalid = 0
        self._total_reward = 0.0
        self._rollback_reason: str | None = None
        self._test_accuracy: float | None = None
        self._val_loss, self._val_accuracy = self._validate()
        self._curve = [self._val_accuracy]
        self._done = False
        return self._observation()

    def step(self, action: FactoredAction) -> StepResult:
        if self._done:
            raise InvalidStateMachineError("step() on a finished episode: call reset(seed) first")
        model = self.model
        accuracy_before = self._val_accuracy
        self._loss_history.append(self._val_loss)
        self._accuracy_history.append(self._val_accuracy)
        stages_before = model.stages()
        reports_before = model.slot_reports()
        success, detail = self._execute(action)
        model.tick()
        self._sync_seed_optimizers()
        train_loss = self._train_epoch()
        self._val_loss, self._val_accuracy = self._validate()
        self._epoch += 1
        self._curve.append(self._val_accuracy)
        verdict = self._require_governor().check(self._val_loss)
        if verdict.rollback:
            self._require_governor().rollback()
            self._reset_optimizers()
            self._rollback_reason = f"{verdict.reason}: {verdict.detail}"
            # The episode ends with the restored model: validate it, and report and reward its accuracy.
            self._val_loss, self._val_accuracy = self._validate()
            self._curve[-1] = self._val_accuracy
            terms = rollback_reward(self.config.reward, accuracy_before, self._val_accuracy)
        else:
            terms = step_reward(
                self.config.reward,
                accuracy_before,
                self._val_accuracy,
                model.active_seed_param_count(),
                model.host_param_count(),
                success,
            )
        events = self._lifecycle_events(stages_before, reports_before)
        self._events.extend(events)
        self._op_counts[action.op.name] += 1
        self._invalid += 0 if success else 1
        self._total_reward += terms.total
        self._last_action = LastAction(action.op, action.slot, success)
        self._done = verdict.rollback or self._epoch >= self.config.max_epochs
        if self._done:
            self._test_accuracy = self._test()
        observation = self._observation()
        return StepResult(
            observation=observation,
            reward=terms.total,
            reward_terms=terms,
            terminal=self._done,
            action=action,
            action_success=success,
            action_detail=detail,
            train_loss=train_loss,
            rolled_back=verdict.rollback,
            events=events,
        )

    def summary(self) -> EpisodeSummary:
        model = self.model
        if self._test_accuracy is None:
            raise InvalidStateMachineError("summary() before the episode ended: step until a terminal result")
        stages = [event.target for event in self._events]
        return EpisodeSummary(
            seed=self._seed,
            epochs_run=self._epoch,
            test_accuracy=self._test_accuracy,
            initial_val_accuracy=self._curve[0],
            final_val_accuracy=self._curve[-1],
            best_val_accuracy=max(self._curve),
            host_params=model.host_param_count(),
            params_added=model.active_seed_param_count(),
            germinated=stages.count(SeedStage.GERMINATED),
            fossilized=stages.count(SeedStage.FOSSILIZED),
            pruned=sum(1 for e in self._events if e.source in LIVE_STAGES and e.target in FAILURE_STAGES),
            invalid_actions=self._invalid,
            rolled_back=self._rollback_reason is not None,
            rollback_reason=self._rollback_reason,
            total_reward=self._total_reward,
            val_accuracy_curve=tuple(self._curve),
            op_counts=dict(self._op_counts),
            events=tuple(self._events),
            seeds_at_end=self._seeds_at_end(),
        )

    # ------------------------------------------------------------------------------------------------ steps
    def _execute(self, action: FactoredAction) -> tuple[bool, str]:
        """Leyline's legality rule with this episode's seed cap first (the model checks the rest again)."""
        if action.op is not LifecycleOp.WAIT and action.slot < self.model.slot_config.num_slots:
            reason = refusal(action.op, action.slot, self.model.slot_conditions(), self._germinations_remaining())
            if reason is not None:
                return False, f"{action.op.name} refused: {reason}"
        result = self.model.execute(action, self._val_accuracy)
        if result.success and action.op is LifecycleOp.GERMINATE:
            self._germinations += 1
        return result.success, result.reason

    def _train_epoch(self) -> float:
        model = self.model
        task = self.task
        order = torch.randperm(task.train_inputs.shape[0], generator=self._data_generator)
        order = order[: self.config.epoch_examples].to(self.device)
        n = order.shape[0]
        optimizers = [self._host_optimizer, *(opt for _, opt in self._seed_optimizers.values())]
        factor = self.config.lr_factor(self._epoch)
        for optimizer in optimizers:
            base = self.config.host_lr if optimizer is self._host_optimizer else self.config.seed_lr
            for group in optimizer.param_groups:
                group["lr"] = base * factor
        parameters = [p for group in optimizers for g in group.param_groups for p in g["params"]]
        total = torch.zeros((), device=self.device)
        seen = 0
        for start in range(0, n, self.config.batch_size):
            index = order[start : start + self.config.batch_size]
            if index.numel() < 2:  # BatchNorm cannot train on a single sample
                continue
            loss = F.cross_entropy(model(task.train_inputs[index]).flatten(0, -2), task.train_targets[index].flatten())
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            model.observe_seed_gradients()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
            for optimizer in optimizers:
                optimizer.step()
            total += loss.detach() * index.numel()
            seen += index.numel()
        return float(total) / max(seen, 1)

    def _validate(self) -> tuple[float, float]:
        """Validation loss and accuracy (percent) of the current model, per target position (per token of a
        language model); records the counterfactuals."""
        model = self.model
        task = self.task
        plan = model.counterfactual_plan()
        correct = torch.zeros(len(plan.rows), dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        n = task.val_inputs.shape[0]
        model.eval()
        try:
            for start in range(0, n, self.config.val_batch_size):
                inputs = task.val_inputs[start : start + self.config.val_batch_size]
                targets = task.val_targets[start : start + self.config.val_batch_size]
                logits = model.forward_with_alphas(inputs, plan.alphas, self._batching)
                correct += count_correct(logits, targets)
                loss_sum += F.cross_entropy(logits[0].flatten(0, -2).float(), targets.flatten(), reduction="sum")
        finally:
            model.train()
        positions = n * task.targets_per_example
        accuracies = correct.double() * (100.0 / positions)
        model.record_counterfactuals(plan, accuracies)
        loss = float(loss_sum) / positions
        return loss, float(accuracies[0])

    def _test(self) -> float:
        """Test accuracy (percent) of the current model, with every slot at its own alpha (the configuration
        validation reports as the model's accuracy). Nothing is recorded on the model."""
        model = self.model
        task = self.task
        keep_alphas = torch.full((1, model.slot_config.num_slots), math.nan)
        correct = torch.zeros(1, dtype=torch.int64, device=self.device)
        n = task.test_inputs.shape[0]
        model.eval()
        try:
            for start in range(0, n, self.config.val_batch_size):
                inputs = task.test_inputs[start : start + self.config.val_batch_size]
                targets = task.test_targets[start : start + self.config.val_batch_size]
                correct += count_correct(model.forward_with_alphas(inputs, keep_alphas), targets)
        finally:
            model.train()
        return float(correct[0]) * 100.0 / (n * task.targets_per_example)

    # ------------------------------------------------------------------------------------------ optimizers
    def _optimizer(self, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        if self.config.optimizer == "adam":
            # fused: one kernel per parameter; PyTorch's default Adam on the CPU is a Python loop of about ten
            # operators per parameter, a tenth or more of a small transformer's epoch (docs/performance.md).
            return torch.optim.Adam(params, lr=lr, weight_decay=self.config.weight_decay, fused=True)
        return torch.optim.SGD(params, lr=lr, momentum=self.config.momentum, weight_decay=self.config.weight_decay)

    def _sync_seed_optimizers(self) -> None:
        """One optimizer per seed: created at germination, dropped when its seed goes, kept (momentum and all)
        while the same seed lives on."""
        model = self.model
        if model.seed_parameter_version == self._seed_param_version:
            return
        self._seed_param_version = model.seed_parameter_version
        current: dict[int, tuple[tuple[int, ...], torch.optim.Optimizer]] = {}
        for index, slot in enumerate(model.slot_config.slot_ids):
            params = list(model.seed_parameters(slot))
            if not params:
                continue
            identity = tuple(id(p) for p in params)
            known = self._seed_optimizers.get(index)
            current[index] = (
                known
                if known is not None and known[0] == identity
                else (
                    identity,
                    self._optimizer(params, self.config.seed_lr),
                )
            )
        self._seed_optimizers = current

    def _reset_optimizers(self) -> None:
        """After a rollback: momentum points the way that diverged, and the seed set changed."""
        self._host_optimizer = self._optimizer(list(self.model.host_parameters()), self.config.host_lr)
        self._seed_optimizers = {}
        self._seed_param_version = -1
        self._sync_seed_optimizers()

    # ------------------------------------------------------------------------------------------ bookkeeping
    def _require_governor(self) -> Governor:
        if self._governor is None:
            raise InvalidStateMachineError("the environment has no governor yet: call reset(seed) first")
        return self._governor

    def _lifecycle_events(
        self, before: tuple[SeedStage, ...], reports_before: tuple[SlotReport, ...]
    ) -> tuple[LifecycleEvent, ...]:
        after = self.model.stages()
        reports_after = self.model.slot_reports()
        events = []
        for index, slot in enumerate(self.model.slot_config.slot_ids):
            if before[index] is not after[index]:
                seed = reports_before[index].seed or reports_after[index].seed
                events.append(
                    LifecycleEvent(
                        self._epoch - 1,
                        str(slot),
                        before[index],
                        after[index],
                        None if seed is None else seed.blueprint.registry_name,
                        None if seed is None else seed.param_count,
                        None if seed is None else seed.metrics.contribution,
                    )
                )
        return tuple(events)

    def _seeds_at_end(self) -> tuple[SeedAtEnd, ...]:
        model = self.model
        seeds = []
        for slot_id, report in zip(model.slot_config.slot_ids, model.slot_reports(), strict=True):
            if report.seed is not None:
                seeds.append(
                    SeedAtEnd(
                        str(slot_id),
                        report.seed.blueprint.registry_name,
                        report.stage,
                        report.seed.param_count,
                        report.seed.metrics.contribution,
                        model.slot(slot_id).affects_output,
                    )
                )
        return tuple(seeds)

    def _germinations_remaining(self) -> int:
        return max(self.config.max_germinations - self._germinations, 0)

    def _observation(self) -> EnvObservation:
        model = self.model
        return EnvObservation(
            epoch=self._epoch,
            max_epochs=self.config.max_epochs,
            val_loss=self._val_loss if math.isfinite(self._val_loss) else math.inf,
            val_accuracy=self._val_accuracy,
            slots=model.slot_reports(),
            loss_history=tuple(self._loss_history),
            accuracy_history=tuple(self._accuracy_history),
            germinations_remaining=self._germinations_remaining(),
            last_action=self._last_action,
            host_param_count=model.host_param_count(),
        )
