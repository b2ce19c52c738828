"""PPO on a ``PolicyBundle``: several epochs over minibatches of whole env sequences, per-head clipped surrogate
with causal masks, value loss on normalized returns, normalized-entropy bonus, KL early stop, grad clipping.

The bundle is injected; this module never builds or inspects a network. The joint policy of the factored action
is the product of the heads that matter for the chosen op, so its score-function gradient is the sum of the
relevant heads' gradients: each head gets its own clipped surrogate, averaged over all valid steps, and heads the
op ignores (placeholder actions, log-prob exactly 0) are masked out of every term.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from esper.leyline import (
    HEAD_ORDER,
    ActionHead,
    CheckpointError,
    ConfigError,
    NonFiniteError,
    PolicyBundle,
    identical,
    relevance_rows,
)
from esper.simic.advantages import compute_gae
from esper.simic.return_normalizer import ReturnNormalizer
from esper.simic.rollout_buffer import RolloutBuffer

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


@dataclass(frozen=True)
class HeadStats:
    """Health of one head over the steps where it had a choice: it mattered for the op and more than one of its
    actions was allowed (a forced choice has entropy 0 by definition and would only dilute the mean). ``None``
    when the head never had a choice this update."""

    entropy: float | None
    approx_kl: float | None
    clip_fraction: float | None
    #: Share of valid steps where the head mattered for the op, and where it also had a choice.
    relevant_fraction: float
    choice_fraction: float


@dataclass(frozen=True)
class UpdateStats:
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    explained_variance: float
    grad_norm: float
    learning_rate: float
    epochs_completed: int
    minibatches: int
    early_stopped: bool
    #: max |ratio - 1| over the first minibatch, before any optimizer step (0 up to float error when the
    #: stored log-probs and the re-evaluation agree).
    first_ratio_deviation: float
    transitions: int
    heads: dict[str, HeadStats] = field(default_factory=dict)
    #: Minibatch steps skipped because the loss or the gradient norm was NaN or infinite (no optimizer step).
    skipped_steps: int = 0

    def flat(self) -> dict[str, float | int | bool | None]:
        """One level of keys (``heads.op.entropy``...) for logs and TensorBoard."""
        out: dict[str, float | int | bool | None] = {k: v for k, v in asdict(self).items() if k != "heads"}
        for head, stats in self.heads.items():
            for key, value in asdict(stats).items():
                out[f"heads.{head}.{key}"] = value
        return out


class _Accumulator:
    """Sums of per-minibatch statistics (weighted by the number of contributing steps)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, key: str, total: float, weight: float) -> None:
        if weight > 0:
            self.sums[key] = self.sums.get(key, 0.0) + total
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def mean(self, key: str) -> float | None:
        weight = self.weights.get(key, 0.0)
        return self.sums[key] / weight if weight > 0 else None


class PPOUpdater:
    """Owns the optimizer and return normalizer of one bundle; ``update`` consumes one round's buffer."""

    def __init__(self, bundle: PolicyBundle, config: PPOConfig, total_rounds: int | None = None) -> None:
        if config.lr_schedule == "linear" and (total_rounds is None or total_rounds < 1):
            raise ConfigError("a linear learning-rate schedule needs total_rounds >= 1")
        self.bundle = bundle
        self.config = config
        self.total_rounds = total_rounds
        self.params = list(bundle.parameters())
        # foreach: the same arithmetic as the per-tensor loop (bitwise), in a few multi-tensor calls.
        self.optimizer = torch.optim.Adam(self.params, lr=config.learning_rate, eps=1e-5, foreach=True)
        self.returns = ReturnNormalizer()
        self.rounds_done = 0
        #: Optimizer steps skipped in a row, across updates (reset by every step taken).
        self.consecutive_skips = 0
        self._relevance = torch.tensor(relevance_rows(), dtype=torch.bool)  # [num_ops, num_heads]

    def current_learning_rate(self) -> float:
        if self.config.lr_schedule == "constant" or self.total_rounds is None:
            return self.config.learning_rate
        remaining = max(0.0, 1.0 - self.rounds_done / self.total_rounds)
        return self.config.learning_rate * max(remaining, 0.05)

    def update(self, buffer: RolloutBuffer, generator: torch.Generator) -> UpdateStats:
        """Run the PPO epochs on ``buffer``, then fold its features into the bundle's observation normalizer
        (after the update, so the rollout and its update used the same normalization).

        A minibatch whose loss or gradient norm is not finite takes no optimizer step (counted in
        ``skipped_steps``); ``MAX_CONSECUTIVE_SKIPPED_STEPS`` in a row raise ``NonFiniteError``, so no NaN ever
        reaches a weight."""
        buffer.check_complete()
        cfg = self.config
        valid = buffer.valid
        n_valid = int(valid.sum())
        raw_values = self.returns.denormalize(buffer.values)
        advantages, returns = compute_gae(
            buffer.rewards, raw_values, buffer.terminals, valid, cfg.gamma, cfg.gae_lambda
        )
        explained = _explained_variance(raw_values[valid], returns[valid])
        self.returns.update(returns[valid])
        value_targets = self.returns.normalize(returns)
        if cfg.normalize_advantages and n_valid > 1:
            flat = advantages[valid]
            advantages = torch.where(valid, (advantages - flat.mean()) / (flat.std() + 1e-8), 0.0)
        relevant = self._relevant_steps(buffer)  # [heads, env, time]
        choices = relevant & torch.stack([buffer.masks[head].sum(dim=-1) > 1 for head in HEAD_ORDER])
        old_log_probs = torch.stack([buffer.log_probs[head] for head in HEAD_ORDER])  # [heads, env, time]

        learning_rate = self.current_learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

        acc = _Accumulator()
        first_deviation = math.nan
        skipped = 0
        minibatches = 0
        epochs_completed = 0
        early_stopped = False
        for _ in range(cfg.update_epochs):
            for env_rows in self._minibatches(buffer.n_envs, generator):
                out = self._minibatch_loss(
                    buffer, env_rows, advantages, value_targets, relevant, choices, old_log_probs
                )
                if minibatches == 0:
                    first_deviation = out.ratio_deviation
                if cfg.target_kl is not None and out.approx_kl > 1.5 * cfg.target_kl:
                    early_stopped = True
                    break
                self.optimizer.zero_grad(set_to_none=True)
                grad_norm = math.nan
                if math.isfinite(float(out.loss.detach())):
                    out.loss.backward()  # type: ignore[no-untyped-call]
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
                if not math.isfinite(grad_norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    self._count_skip()
                    continue
                self.optimizer.step()
                self.consecutive_skips = 0
                minibatches += 1
                out.accumulate(acc, grad_norm)
            if early_stopped:
                break
            epochs_completed += 1

        self.rounds_done += 1
        self.bundle.update_normalizer(buffer.features[valid])
        shares = torch.stack((relevant.sum(dim=(1, 2)), choices.sum(dim=(1, 2)))).double() / max(n_valid, 1)
        return self._stats(
            acc,
            explained,
            learning_rate,
            epochs_completed,
            minibatches,
            early_stopped,
            first_deviation,
            n_valid,
            shares.tolist(),
            skipped,
        )

    def _count_skip(self) -> None:
        self.consecutive_skips += 1
        if self.consecutive_skips >= MAX_CONSECUTIVE_SKIPPED_STEPS:
            raise NonFiniteError(
                f"{self.consecutive_skips} PPO steps in a row had a NaN or infinite loss or gradient norm; "
                "training stopped before any of it reached a weight (the last checkpoint is intact)"
            )

    def _relevant_steps(self, buffer: RolloutBuffer) -> torch.Tensor:
        ops = buffer.actions[ActionHead.OP]
        per_head = self._relevance[ops]  # [env, time, heads]
        return per_head.permute(2, 0, 1) & buffer.valid.unsqueeze(0)

    def _minibatches(self, n_envs: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        order = torch.randperm(n_envs, generator=generator)
        size = min(self.config.minibatch_envs, n_envs)
        for start in range(0, n_envs, size):
            yield order[start : start + size]

    def _minibatch_loss(
        self,
        buffer: RolloutBuffer,
        rows: torch.Tensor,
        advantages: torch.Tensor,
        value_targets: torch.Tensor,
        relevant: torch.Tensor,
        choices: torch.Tensor,
        old_log_probs: torch.Tensor,
    ) -> _MinibatchOutput:
        """All heads at once, as ``[heads, env, time]`` tensors (one op per step of the loss, not one per head:
        the update is op-bound on a CPU, ``tools/bench``)."""
        cfg = self.config
        device = self.bundle.device
        valid = buffer.valid[rows].to(device)
        n_valid = valid.sum().clamp(min=1)
        hidden = (
            buffer.initial_hidden[0][:, rows].to(device).contiguous(),
            buffer.initial_hidden[1][:, rows].to(device).contiguous(),
        )
        autocast = cfg.autocast_dtype == "bfloat16"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            evaluated = self.bundle.evaluate_actions(
                buffer.features[rows].to(device),
                buffer.blueprint_indices[rows].to(device),
                {h: buffer.actions[h][rows].to(device) for h in HEAD_ORDER},
                {h: buffer.masks[h][rows].to(device) for h in HEAD_ORDER},
                hidden,
            )
        adv = advantages[rows].to(device)
        mask = relevant[:, rows].to(device)  # [heads, env, time]
        new_log_probs = torch.stack([evaluated.log_probs[head] for head in HEAD_ORDER]).float()
        log_ratio = torch.where(mask, new_log_probs - old_log_probs[:, rows].to(device), 0.0)
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1.0 - cfg.clip_ratio, 1.0 + cfg.clip_ratio)
        surrogate = torch.minimum(ratio * adv, clipped * adv)
        policy_loss = -(surrogate * mask).sum() / n_valid
        joint_log_ratio = log_ratio.sum(dim=0)
        entropy = torch.stack([evaluated.entropy[head] for head in HEAD_ORDER]).float()
        choice = choices[:, rows].to(device)  # [heads, env, time]
        counts = choice.sum(dim=(1, 2))
        choosing_heads = counts > 0
        # Mean over the heads that had a choice of each head's mean entropy over those steps.
        head_entropy = (entropy * choice).sum(dim=(1, 2)) / counts.clamp(min=1)
        entropy_bonus = (
            head_entropy[choosing_heads].mean() if bool(choosing_heads.any()) else torch.zeros((), device=device)
        )
        # A forced choice has log-prob 0 at rollout and update alike, so the choice steps bound the deviation.
        ratio_deviation = float(((ratio.detach() - 1.0).abs() * choice).amax()) if bool(choice.any()) else 0.0
        values = evaluated.values.float()
        targets = value_targets[rows].to(device)
        value_loss = 0.5 * (((values - targets) ** 2) * valid).sum() / n_valid
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy_bonus
        joint = joint_log_ratio.detach()
        approx_kl = float((((joint.exp() - 1.0) - joint) * valid).sum() / n_valid)
        joint_clipped = float((((joint.exp() - 1.0).abs() > cfg.clip_ratio) & valid).sum() / n_valid)
        return _MinibatchOutput(
            loss=loss,
            policy_loss=float(policy_loss.detach()),
            value_loss=float(value_loss.detach()),
            entropy=float(entropy_bonus.detach()),
            approx_kl=approx_kl,
            clip_fraction=joint_clipped,
            ratio_deviation=ratio_deviation,
            n_valid=float(n_valid),
            choice=choice,
            log_ratio=log_ratio.detach(),
            ratio=ratio.detach(),
            step_entropy=entropy.detach(),
            clip_ratio=cfg.clip_ratio,
        )

    def _stats(
        self,
        acc: _Accumulator,
        explained: float,
        learning_rate: float,
        epochs: int,
        minibatches: int,
        early_stopped: bool,
        first_deviation: float,
        transitions: int,
        shares: list[list[float]],
        skipped: int,
    ) -> UpdateStats:
        """``shares``: [relevant share, choice share] of the buffer's valid steps, per head in HEAD_ORDER."""
        heads: dict[str, HeadStats] = {}
        for index, head in enumerate(HEAD_ORDER):
            key = head.value
            heads[key] = HeadStats(
                entropy=acc.mean(f"{key}.entropy"),
                approx_kl=acc.mean(f"{key}.kl"),
                clip_fraction=acc.mean(f"{key}.clip"),
                relevant_fraction=shares[0][index],
                choice_fraction=shares[1][index],
            )

        def mean(key: str) -> float:
            value = acc.mean(key)
            return value if value is not None else math.nan

        return UpdateStats(
            policy_loss=mean("policy_loss"),
            value_loss=mean("value_loss"),
            entropy=mean("entropy"),
            approx_kl=mean("approx_kl"),
            clip_fraction=mean("clip_fraction"),
            explained_variance=explained,
            grad_norm=mean("grad_norm"),
            learning_rate=learning_rate,
            epochs_completed=epochs,
            minibatches=minibatches,
            early_stopped=early_stopped,
            first_ratio_deviation=first_deviation,
            transitions=transitions,
            skipped_steps=skipped,
            heads=heads,
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
        _check_adam_state(state.get("optimizer"), self.params, self.optimizer.state_dict()["param_groups"])
        returns = ReturnNormalizer.from_state_dict(state.get("returns"))
        counters = {key: state.get(key) for key in ("rounds_done", "consecutive_skips")}
        for key, value in counters.items():
            if not (isinstance(value, int) and type(value) is not bool and value >= 0):
                raise CheckpointError(f"updater {key} must be an integer >= 0, got {value!r}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.returns = returns
        self.rounds_done = state["rounds_done"]
        self.consecutive_skips = state["consecutive_skips"]


@dataclass
class _MinibatchOutput:
    loss: torch.Tensor
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    ratio_deviation: float
    n_valid: float
    #: ``[heads, env, time]`` in HEAD_ORDER: choice (relevant with more than one allowed action), log-ratio,
    #: ratio and normalized entropy of every head.
    choice: torch.Tensor
    log_ratio: torch.Tensor
    ratio: torch.Tensor
    step_entropy: torch.Tensor
    clip_ratio: float

    def accumulate(self, acc: _Accumulator, grad_norm: float) -> None:
        n = self.n_valid
        for key, value in (
            ("policy_loss", self.policy_loss),
            ("value_loss", self.value_loss),
            ("entropy", self.entropy),
            ("approx_kl", self.approx_kl),
            ("clip_fraction", self.clip_fraction),
        ):
            acc.add(key, value * n, n)
        acc.add("grad_norm", grad_norm, 1.0)
        choice, ratio = self.choice, self.ratio
        per_head = torch.stack(
            (
                choice.sum(dim=(1, 2)).float(),
                (self.step_entropy * choice).sum(dim=(1, 2)),
                (((ratio - 1.0) - self.log_ratio) * choice).sum(dim=(1, 2)),
                (((ratio - 1.0).abs() > self.clip_ratio) & choice).sum(dim=(1, 2)).float(),
            )
        ).tolist()
        for head, count, entropy, kl, clip in zip(HEAD_ORDER, *per_head, strict=True):
            if count == 0:
                continue
            acc.add(f"{head.value}.entropy", entropy, count)
            acc.add(f"{head.value}.kl", kl, count)
            acc.add(f"{head.value}.clip", clip, count)


def _check_adam_state(state: object, params: list[torch.nn.Parameter], groups: list[dict[str, Any]]) -> None:
    """An Adam state dict that fits ``params``: the same parameter groups and hyperparameter keys, and per
    parameter a finite step and finite moments of the parameter's shape (torch itself would only fail later)."""
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise CheckpointError("optimizer state must be a mapping with 'state' and 'param_groups'")
    saved_groups = state["param_groups"]
    if not isinstance(saved_groups, list) or len(saved_groups) != len(groups):
        raise CheckpointError(f"optimizer state must have {len(groups)} parameter group(s)")
    for saved, live in zip(saved_groups, groups, strict=True):
        if not isinstance(saved, dict) or set(saved) != set(live):
            raise CheckpointError("optimizer parameter groups do not match this policy")
        different = [key for key in live if key != "lr" and not identical(saved[key], live[key])]
        if different:
            raise CheckpointError(f"optimizer parameter group settings {different} do not match this policy's")
        lr = saved["lr"]
        if type(lr) is not float or not math.isfinite(lr) or lr < 0:
            raise CheckpointError(f"optimizer learning rate must be a finite float >= 0, got {lr!r}")
    per_param = state["state"]
    # Adam creates every parameter's state at its first step: a checkpoint holds all of them or none.
    if not isinstance(per_param, dict) or set(per_param) not in (set(), set(range(len(params)))):
        raise CheckpointError(
            f"optimizer per-parameter state must be keyed by all {len(params)} parameter indices (or be empty)"
        )
    for index, entry in per_param.items():
        shape = params[index].shape
        if not isinstance(entry, dict) or set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise CheckpointError(f"optimizer state of parameter {index} must hold step, exp_avg and exp_avg_sq")
        for key, value in entry.items():
            expected = () if key == "step" else shape
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.shape != expected:
                raise CheckpointError(
                    f"optimizer {key} of parameter {index} must be a float tensor of shape {expected}"
                )
            if not bool(torch.isfinite(value).all()) or (key != "exp_avg" and bool((value < 0).any())):
                raise CheckpointError(f"optimizer {key} of parameter {index} is negative or not finite")


def _explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); NaN when the targets do not vary."""
    if target.numel() < 2:
        return math.nan
    variance = float(target.var())
    if variance <= 1e-12:
        return math.nan
    return 1.0 - float((target - predicted).var()) / variance
