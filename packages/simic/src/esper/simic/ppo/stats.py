"""What an update reports, beside the loss it minimizes: joint and per-head KL, clip fractions and entropies,
explained variance and the first minibatch's ratio deviation.

None of this feeds back into the gradient except the joint approximate KL, which the updater compares with its
early-stop threshold. Tensors are ``[heads, env, time]`` in ``HEAD_ORDER`` (as in ``loss``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from esper.leyline import HEAD_ORDER
from esper.simic.ppo.loss import PPOLoss


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


@dataclass
class MinibatchStats:
    """The statistics of one minibatch, read off its loss terms before the optimizer step."""

    terms: PPOLoss
    #: ``[heads, env, time]``: the head mattered and had more than one allowed action.
    choice: Tensor
    #: ``[heads, env, time]`` normalized entropy of every head.
    entropy: Tensor
    n_valid: float
    clip_coef: float
    #: Joint approximate KL (the early-stop signal) and joint clip fraction, averaged over valid steps.
    approx_kl: float
    clip_fraction: float
    #: max |ratio - 1| over the steps with a choice (a forced choice has log-prob 0 at rollout and update alike).
    ratio_deviation: float

    @classmethod
    def of(cls, terms: PPOLoss, choice: Tensor, entropy: Tensor, valid: Tensor, clip_coef: float) -> MinibatchStats:
        n_valid = valid.sum().clamp(min=1)
        # The joint action's log-ratio is the sum over heads; KL by the low-variance estimator (r - 1) - log r.
        joint = terms.log_ratio.detach().sum(dim=0)
        approx_kl = float((((joint.exp() - 1.0) - joint) * valid).sum() / n_valid)
        clip_fraction = float((((joint.exp() - 1.0).abs() > clip_coef) & valid).sum() / n_valid)
        deviation = float(((terms.ratio.detach() - 1.0).abs() * choice).amax()) if bool(choice.any()) else 0.0
        return cls(terms, choice, entropy.detach(), float(n_valid), clip_coef, approx_kl, clip_fraction, deviation)


class StatsAccumulator:
    """Sums of per-minibatch statistics, each weighted by the number of steps it covers, over one update."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def _add(self, key: str, total: float, weight: float) -> None:
        if weight > 0:
            self.sums[key] = self.sums.get(key, 0.0) + total
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def _mean(self, key: str) -> float | None:
        weight = self.weights.get(key, 0.0)
        return self.sums[key] / weight if weight > 0 else None

    def add(self, stats: MinibatchStats, grad_norm: float) -> None:
        """Fold in a minibatch that took an optimizer step with gradient norm ``grad_norm``."""
        terms, n = stats.terms, stats.n_valid
        for key, value in (
            ("policy_loss", float(terms.pg_loss.detach())),
            ("value_loss", float(terms.v_loss.detach())),
            ("entropy", float(terms.entropy_loss.detach())),
            ("approx_kl", stats.approx_kl),
            ("clip_fraction", stats.clip_fraction),
        ):
            self._add(key, value * n, n)
        self._add("grad_norm", grad_norm, 1.0)
        choice, ratio, log_ratio = stats.choice, terms.ratio.detach(), terms.log_ratio.detach()
        per_head = torch.stack(
            (
                choice.sum(dim=(1, 2)).float(),
                (stats.entropy * choice).sum(dim=(1, 2)),
                (((ratio - 1.0) - log_ratio) * choice).sum(dim=(1, 2)),
                (((ratio - 1.0).abs() > stats.clip_coef) & choice).sum(dim=(1, 2)).float(),
            )
        ).tolist()
        for head, count, entropy, kl, clip in zip(HEAD_ORDER, *per_head, strict=True):
            if count == 0:
                continue
            self._add(f"{head.value}.entropy", entropy, count)
            self._add(f"{head.value}.kl", kl, count)
            self._add(f"{head.value}.clip", clip, count)

    def head_stats(self, relevant: Tensor, choices: Tensor, n_valid: int) -> dict[str, HeadStats]:
        """Per-head means, with each head's relevant and choice shares of the round's ``n_valid`` steps
        (``relevant`` and ``choices`` ``[heads, env, time]`` of the whole buffer)."""
        shares = torch.stack((relevant.sum(dim=(1, 2)), choices.sum(dim=(1, 2)))).double() / max(n_valid, 1)
        relevant_share, choice_share = shares.tolist()
        return {
            head.value: HeadStats(
                entropy=self._mean(f"{head.value}.entropy"),
                approx_kl=self._mean(f"{head.value}.kl"),
                clip_fraction=self._mean(f"{head.value}.clip"),
                relevant_fraction=relevant_share[index],
                choice_fraction=choice_share[index],
            )
            for index, head in enumerate(HEAD_ORDER)
        }

    def mean(self, key: str) -> float:
        """The weighted mean of a joint statistic; NaN when no minibatch took a step."""
        value = self._mean(key)
        return value if value is not None else math.nan


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); NaN when the targets do not vary."""
    if target.numel() < 2:
        return math.nan
    variance = float(target.var())
    if variance <= 1e-12:
        return math.nan
    return 1.0 - float((target - predicted).var()) / variance
