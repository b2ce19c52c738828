"""PPO on a ``PolicyBundle``, read top to bottom: GAE and advantage normalization over the whole round, then
several epochs over minibatches of whole env sequences, each re-scored by the bundle, scored by ``loss``
and stepped with a clipped gradient; an approximate-KL early stop bounds how far one update moves the policy.

The bundle is injected; this module never builds or inspects a network, and hands the stored policy inputs back
to the bundle unread. The loss is in ``loss``, what an update reports in ``stats``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from esper.leyline import CheckpointError, ConfigError, EvalResult, NonFiniteError, PolicyBundle
from esper.simic.ppo.adam_state import check_adam_state
from esper.simic.ppo.advantages import compute_gae
from esper.simic.ppo.loss import ppo_loss
from esper.simic.ppo.return_normalizer import ReturnNormalizer
from esper.simic.ppo.rollout_buffer import RolloutBuffer
from esper.simic.ppo.stats import MinibatchStats, StatsAccumulator, UpdateStats, explained_variance

#: Optimizer steps skipped in a row (non-finite loss or gradient norm) after which training stops: one bad
#: minibatch is noise worth surviving, a run of them means the policy or its data is broken.
MAX_CONSECUTIVE_SKIPPED_STEPS = 3


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters. ``minibatch_envs`` whole env sequences form one minibatch.

    The defaults suit the small default policy (~65k parameters) and 8 envs per round: with the textbook
    3e-4 / 4 epochs / clip 0.5 the digits policy moved by a KL of ~5e-5 per update and learned nothing in 40
    rounds; 2e-3 / 8 epochs / 4 minibatches moves it by ~0.01-0.02, and the KL early stop bounds the step.
    """

    learning_rate: float = 2e-3
    lr_schedule: Literal["constant", "linear"] = "constant"
    update_epochs: int = 8
    minibatch_envs: int = 2
    clip_ratio: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 1.0
    target_kl: float | None = 0.03
    gamma: float = 0.99
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    autocast_dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self) -> None:
        finite_positive = {
            "learning_rate": self.learning_rate,
            "update_epochs": self.update_epochs,
            "minibatch_envs": self.minibatch_envs,
            "clip_ratio": self.clip_ratio,
        }
        for name, value in finite_positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"ppo.{name} must be > 0 and finite, got {value}")
        # Infinity is meaningful for these two: no gradient clipping, no KL early stop.
        if not self.max_grad_norm > 0:
            raise ConfigError(f"ppo.max_grad_norm must be > 0 (inf: no clipping), got {self.max_grad_norm}")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ConfigError(f"ppo.target_kl must be > 0 (inf or none: no early stop), got {self.target_kl}")
        for name, value in {"gamma": self.gamma, "gae_lambda": self.gae_lambda}.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"ppo.{name} must be in [0, 1], got {value}")
        for name, value in {"value_coef": self.value_coef, "entropy_coef": self.entropy_coef}.items():
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"ppo.{name} must be a finite number >= 0, got {value}")
        if self.lr_schedule not in ("constant", "linear"):
            raise ConfigError(f"ppo.lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        if self.autocast_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"ppo.autocast_dtype must be 'float32' or 'bfloat16', got {self.autocast_dtype!r}")


class PPOUpdater:
    """Owns the optimizer and return normalizer of one bundle; ``update`` consumes one round's buffer."""

    def __init__(self, bundle: PolicyBundle, config: PPOConfig, total_rounds: int | None = None) -> None:
        if config.lr_schedule == "linear" and (total_rounds is None or total_rounds < 1):
            raise ConfigError("a linear learning-rate schedule needs total_rounds >= 1")
        self.bundle = bundle
        self.config = config
        self.total_rounds = total_rounds
        self.params = list(bundle.parameters())
        # eps=1e-5 rather than torch's default 1e-8: the value of OpenAI baselines' PPO, which CleanRL and SB3
        # keep. foreach: the same arithmetic as the per-tensor loop (bitwise), in a few multi-tensor calls.
        self.optimizer = torch.optim.Adam(self.params, lr=config.learning_rate, eps=1e-5, foreach=True)
        self.returns = ReturnNormalizer()
        self.rounds_done = 0
        #: Optimizer steps skipped in a row, across updates (reset by every step taken).
        self.consecutive_skips = 0

    def current_learning_rate(self) -> float:
        if self.config.lr_schedule == "constant" or self.total_rounds is None:
            return self.config.learning_rate
        remaining = max(0.0, 1.0 - self.rounds_done / self.total_rounds)
        # The linear schedule stops at 5% of the initial rate instead of 0: the last rounds still learn.
        return self.config.learning_rate * max(remaining, 0.05)

    def update(self, buffer: RolloutBuffer, generator: torch.Generator) -> UpdateStats:
        """Run the PPO epochs on ``buffer``, then fold its inputs into the bundle's observation normalizer
        (after the update, so the rollout and its update used the same normalization).

        A minibatch whose loss or gradient norm is not finite takes no optimizer step (counted in
        ``skipped_steps``); ``MAX_CONSECUTIVE_SKIPPED_STEPS`` in a row raise ``NonFiniteError``, so no NaN ever
        reaches a weight."""
        buffer.check_complete()
        cfg = self.config
        valid = buffer.valid
        n_valid = int(valid.sum())
        # Values are stored in the value head's normalized units; GAE works in reward units.
        raw_values = self.returns.denormalize(buffer.values)
        advantages, returns = compute_gae(
            buffer.rewards, raw_values, buffer.terminals, valid, cfg.gamma, cfg.gae_lambda
        )
        explained = explained_variance(raw_values[valid], returns[valid])
        self.returns.update(returns[valid])
        value_targets = self.returns.normalize(returns)
        # Advantages are normalized once over every valid step of the round, not per minibatch as in CleanRL: a
        # minibatch holds only one or two env sequences, too few steps for a mean and deviation of their own.
        if cfg.normalize_advantages and n_valid > 1:
            flat = advantages[valid]
            advantages = torch.where(valid, (advantages - flat.mean()) / (flat.std() + 1e-8), 0.0)
        # [heads, env, time], the buffer's [env, time, heads] with the heads moved first: the head mattered for
        # the stored op (as the policy reported it with the action); ``choices``: it also had more than one
        # allowed action. The masked sums below add in memory order, so every tensor keeps the layout it has
        # always had (``relevant`` laid out as the buffer, the others contiguous heads-first): same seeds, same
        # numbers.
        relevant = buffer.relevant.permute(2, 0, 1) & valid.unsqueeze(0)
        choices = relevant & _heads_first(buffer.masks.sum(dim=-1) > 1)
        old_log_probs = _heads_first(buffer.log_probs)

        learning_rate = self.current_learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

        acc = StatsAccumulator()
        first_deviation = math.nan
        skipped = 0
        minibatches = 0
        epochs_completed = 0
        early_stopped = False
        for _ in range(cfg.update_epochs):
            for rows in self._minibatches(buffer.n_envs, generator):
                stats = self._minibatch(buffer, rows, advantages, value_targets, relevant, choices, old_log_probs)
                if minibatches == 0:
                    first_deviation = stats.ratio_deviation
                # KL early stop, before the step that would take the policy past 1.5 x target_kl (the factor SB3
                # uses): the threshold bounds the KL of the update, not of one minibatch.
                if cfg.target_kl is not None and stats.approx_kl > 1.5 * cfg.target_kl:
                    early_stopped = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                grad_norm = math.nan
                if math.isfinite(float(stats.terms.loss.detach())):
                    stats.terms.loss.backward()  # type: ignore[no-untyped-call]
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
                if not math.isfinite(grad_norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    self._count_skip()
                    continue
                self.optimizer.step()
                self.consecutive_skips = 0
                minibatches += 1
                acc.add(stats, grad_norm)
            if early_stopped:
                break
            epochs_completed += 1

        self.rounds_done += 1
        self.bundle.update_normalizer(buffer.valid_inputs())
        return UpdateStats(
            policy_loss=acc.mean("policy_loss"),
            value_loss=acc.mean("value_loss"),
            entropy=acc.mean("entropy"),
            approx_kl=acc.mean("approx_kl"),
            clip_fraction=acc.mean("clip_fraction"),
            explained_variance=explained,
            grad_norm=acc.mean("grad_norm"),
            learning_rate=learning_rate,
            epochs_completed=epochs_completed,
            minibatches=minibatches,
            early_stopped=early_stopped,
            first_ratio_deviation=first_deviation,
            transitions=n_valid,
            skipped_steps=skipped,
            heads=acc.head_stats(relevant, choices, n_valid),
        )

    def _count_skip(self) -> None:
        self.consecutive_skips += 1
        if self.consecutive_skips >= MAX_CONSECUTIVE_SKIPPED_STEPS:
            raise NonFiniteError(
                f"{self.consecutive_skips} PPO steps in a row had a NaN or infinite loss or gradient norm; "
                "training stopped before any of it reached a weight (the last checkpoint is intact)"
            )

    def _minibatches(self, n_envs: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Whole env sequences in a seeded random order, ``minibatch_envs`` at a time (the recurrent state of a
        sequence is only known from its first step)."""
        order = torch.randperm(n_envs, generator=generator)
        size = min(self.config.minibatch_envs, n_envs)
        for start in range(0, n_envs, size):
            yield order[start : start + size]

    def _minibatch(
        self,
        buffer: RolloutBuffer,
        rows: torch.Tensor,
        advantages: torch.Tensor,
        value_targets: torch.Tensor,
        relevant: torch.Tensor,
        choices: torch.Tensor,
        old_log_probs: torch.Tensor,
    ) -> MinibatchStats:
        """Re-score the sequences of ``rows`` and score them with the loss: all heads at once, as
        ``[heads, env, time]`` tensors (one op per term, not one per head: the update is op-bound on a CPU)."""
        cfg = self.config
        device = self.bundle.device
        evaluated = self.evaluate_rows(buffer, rows)
        valid = buffer.valid[rows].to(device)
        choice = choices[:, rows].to(device)
        entropy = _heads_first(evaluated.entropy).float()
        terms = ppo_loss(
            new_log_probs=_heads_first(evaluated.log_probs).float(),
            old_log_probs=old_log_probs[:, rows].to(device),
            advantages=advantages[rows].to(device),
            relevant=relevant[:, rows].to(device),
            entropy=entropy,
            choice=choice,
            new_values=evaluated.values.float(),
            value_targets=value_targets[rows].to(device),
            valid=valid,
            clip_coef=cfg.clip_ratio,
            vf_coef=cfg.value_coef,
            ent_coef=cfg.entropy_coef,
        )
        return MinibatchStats.of(terms, choice, entropy, valid, cfg.clip_ratio)

    def evaluate_rows(self, buffer: RolloutBuffer, rows: torch.Tensor) -> EvalResult:
        """The bundle's re-scoring of the stored sequences ``rows`` (on its device, under the configured
        autocast), from each sequence's stored initial state."""
        device = self.bundle.device
        hidden = (
            buffer.initial_hidden[0][:, rows].to(device).contiguous(),
            buffer.initial_hidden[1][:, rows].to(device).contiguous(),
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.config.autocast_dtype == "bfloat16"):
            return self.bundle.evaluate_actions(
                {name: value[rows].to(device) for name, value in buffer.inputs.items()},
                buffer.actions[rows].to(device),
                buffer.masks[rows].to(device),
                hidden,
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "returns": self.returns.state_dict(),
            "rounds_done": self.rounds_done,
            "consecutive_skips": self.consecutive_skips,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore optimizer, return normalizer and counters after checking everything against this updater's
        parameters (``CheckpointError`` names the first problem; nothing changes then)."""
        check_adam_state(state.get("optimizer"), self.params, self.optimizer.state_dict()["param_groups"])
        returns = ReturnNormalizer.from_state_dict(state.get("returns"))
        counters = {key: state.get(key) for key in ("rounds_done", "consecutive_skips")}
        for key, value in counters.items():
            if not (isinstance(value, int) and type(value) is not bool and value >= 0):
                raise CheckpointError(f"updater {key} must be an integer >= 0, got {value!r}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.returns = returns
        self.rounds_done = state["rounds_done"]
        self.consecutive_skips = state["consecutive_skips"]


def _heads_first(per_head: torch.Tensor) -> torch.Tensor:
    """``[env, time, heads]`` as contiguous ``[heads, env, time]``, the layout of the loss and stats terms."""
    return per_head.movedim(-1, 0).contiguous()
