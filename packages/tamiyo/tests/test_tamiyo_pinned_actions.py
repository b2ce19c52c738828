"""Pinned outputs of the acting path: the same observations and seeds give exactly these features, masks and
actions, whatever the implementation of encoding, masking and sampling (issue 19 vectorized all three and had to
keep a run's actions identical).

The observations come from a seeded ``random.Random`` and cover every stage, missing and non-finite metrics,
partial histories and the seed cap. The policy's weights are exact dyadic numbers drawn as integers (no LAPACK
initialization whose last bits could depend on the CPU). The digests were recorded with torch 2.15 on CPU; only a
change of the feature layout (which bumps ``FEATURE_SCHEMA_VERSION``) or of torch's CPU kernels may re-record them.
"""

from __future__ import annotations

import hashlib
import math
import random

import torch
from _tamiyo_fixtures import SLOTS, observation, seed, slot

from esper.leyline import (
    FAILURE_STAGES,
    HEAD_INDEX,
    HISTORY_LENGTH,
    SEED_BEARING_STAGES,
    TOPOLOGY_BLUEPRINTS,
    ActionHead,
    AlphaCurve,
    AlphaMode,
    AlphaSnapshot,
    BlendStyle,
    EnvObservation,
    LastAction,
    LifecycleOp,
    SeedMetrics,
    SeedReport,
    SeedStage,
    SlotReport,
    Tempo,
    Topology,
)
from esper.tamiyo import LSTMPolicyBundle

ENVS = 48
STEPS = 3
_ODD = (None, math.nan, math.inf, -math.inf)
#: The op of every env at every step of the sampled rollout (one digit per env: its LifecycleOp value).
PINNED_OPS = (
    "050005052050500340503330400005012010405005005005",
    "045000000240401300005050455455550300053342005250",
    "203050000543005300050355554500050045105050305503",
)
#: Per head (HEAD_ORDER), the sum of the sampled actions' log-probs over the rollout.
PINNED_LOG_PROB_SUMS = [
    -8.668448448181152,
    -7.807855606079102,
    -13.848752975463867,
    -4.401754856109619,
    -10.883752822875977,
    -27.529529571533203,
    -32.132232666015625,
    -118.38648986816406,
]


def _maybe(rng: random.Random, low: float, high: float) -> float | None:
    """Mostly a value in [low, high], sometimes missing or non-finite."""
    if rng.random() < 0.2:
        return rng.choice(_ODD)
    return rng.uniform(low, high)


def _seed(rng: random.Random) -> SeedReport:
    total = rng.randint(0, 8)
    age = rng.randint(0, 40)
    return seed(
        blueprint=rng.choice(TOPOLOGY_BLUEPRINTS[Topology.CNN][1:]),
        style=rng.choice(list(BlendStyle)),
        tempo=rng.choice(list(Tempo)),
        alpha=AlphaSnapshot(
            rng.random(), rng.random(), rng.choice(list(AlphaMode)), total, rng.randint(0, total), AlphaCurve.LINEAR
        ),
        metrics=SeedMetrics(
            contribution=_maybe(rng, -20.0, 20.0),
            contribution_at_full_alpha=_maybe(rng, -20.0, 20.0),
            contribution_velocity=rng.uniform(-3.0, 3.0),
            epochs_since_measurement=rng.choice((None, 0, 1, 7)),
            gradient_norm=_maybe(rng, 0.0, 5000.0),
            gradient_health=rng.choice((None, 0.0, 0.4, 1.0)),
            accuracy_at_stage_entry=_maybe(rng, 0.0, 100.0),
            accuracy_at_germination=_maybe(rng, 0.0, 100.0),
        ),
        age=age,
        epochs_in_stage=rng.randint(0, age),
        param_count=rng.randint(0, 50_000),
        gate_blocked_epochs=rng.randint(0, 3),
    )


def _slot(rng: random.Random, index: int) -> SlotReport:
    stage = rng.choice(list(SeedStage))
    report = _seed(rng) if stage in SEED_BEARING_STAGES else None
    return slot(index, stage, report, rng.randint(0, 4) if stage in FAILURE_STAGES else 0)


def _observation(rng: random.Random) -> EnvObservation:
    """The fixture's ``observation`` with every field drawn (keywords in the order of the draws)."""
    max_epochs = rng.randint(1, 60)
    history = rng.randint(0, HISTORY_LENGTH)
    return observation(
        epoch=rng.randint(0, max_epochs),
        max_epochs=max_epochs,
        val_loss=_maybe(rng, 0.0, 1e7) or 0.5,
        val_accuracy=_maybe(rng, -5.0, 105.0) or 50.0,
        slots=[_slot(rng, index) for index in range(SLOTS.num_slots)],
        loss_history=tuple(rng.choice((rng.uniform(0.0, 3.0), math.nan, math.inf, 1e9)) for _ in range(history)),
        accuracy_history=tuple(rng.choice((rng.uniform(0.0, 100.0), math.nan)) for _ in range(history)),
        germinations_remaining=rng.randint(0, 3),
        last_action=rng.choice(
            (None, LastAction(rng.choice(list(LifecycleOp)), rng.randint(0, 2), rng.random() < 0.5))
        ),
        host_param_count=rng.randint(0, 100_000),
    )


def pinned_observations(step: int) -> list[EnvObservation]:
    rng = random.Random(1000 + step)
    return [_observation(rng) for _ in range(ENVS)]


def pinned_bundle() -> LSTMPolicyBundle:
    """Weights k / 512 with integer k drawn from a seeded generator, and normalizer statistics from the pinned
    observations."""
    bundle = LSTMPolicyBundle(SLOTS)
    generator = torch.Generator().manual_seed(19)
    with torch.no_grad():
        for parameter in bundle.parameters():
            parameter.copy_(torch.randint(-24, 25, parameter.shape, generator=generator).to(parameter.dtype) / 512)
    bundle.update_normalizer(bundle.encode(pinned_observations(STEPS)).inputs)
    return bundle


def _digest(tensors: list[torch.Tensor]) -> str:
    hasher = hashlib.sha256()
    for tensor in tensors:
        hasher.update(str(tensor.dtype).encode())
        hasher.update(tensor.contiguous().numpy().tobytes())
    return hasher.hexdigest()[:16]


def test_encoding_and_masks_are_pinned() -> None:
    bundle = pinned_bundle()
    encoded = [bundle.encode(pinned_observations(step)) for step in range(STEPS)]
    features = _digest([e.inputs["features"] for e in encoded] + [e.inputs["blueprint_indices"] for e in encoded])
    masks = _digest(
        [
            t
            for e in encoded
            for t in (e.masks.op, e.masks.slot_by_op, *(e.masks.heads[h] for h in sorted(e.masks.heads)))
        ]
    )
    assert (features, masks) == ("6ae44395bd976974", "cd3500ffe1373b68")


def _rollout(deterministic: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per step, the ``[envs, heads]`` actions and log-probs of a rollout that carries the hidden state."""
    bundle = pinned_bundle()
    generator = torch.Generator().manual_seed(7)
    hidden = bundle.initial_hidden(ENVS)
    actions, log_probs = [], []
    for step in range(STEPS):
        result = bundle.get_action(bundle.encode(pinned_observations(step)), hidden, deterministic, generator)
        actions.append(result.actions)
        log_probs.append(result.log_probs)
        hidden = result.hidden
    return actions, log_probs


def test_sampled_actions_are_pinned() -> None:
    actions, log_probs = _rollout(deterministic=False)
    ops = HEAD_INDEX[ActionHead.OP]
    assert tuple("".join(map(str, step[:, ops].tolist())) for step in actions) == PINNED_OPS
    assert _digest(actions) == "8f09553b7a34a9af"
    torch.testing.assert_close(torch.stack(log_probs).sum(dim=(0, 1)), torch.tensor(PINNED_LOG_PROB_SUMS))


def test_most_probable_actions_are_pinned() -> None:
    actions, _ = _rollout(deterministic=True)
    assert _digest(actions) == "2e7b7d99c9fd6141"
