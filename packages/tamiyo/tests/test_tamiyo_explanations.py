"""What tamiyo's controllers say of their decisions (leyline's ``ExplainingController``): the heuristic's rule and
the signals it saw, the fixed schedule's rule, the baselines' one rule; and the LSTM bundle's explanation, which
draws nothing and so leaves the actions as they were."""

from __future__ import annotations

import pytest
import torch
from _tamiyo_fixtures import SLOTS, observation, perturbed_bundle, seed, slot, varied_observations

from esper.leyline import (
    HEAD_INDEX,
    HEAD_ORDER,
    ActionHead,
    ExplainingController,
    FactoredAction,
    InvalidStateMachineError,
    LastAction,
    LifecycleOp,
    SeedMetrics,
    SeedStage,
    Topology,
)
from esper.leyline import Blueprint as B
from esper.tamiyo import HeuristicController, RandomValidController, ScheduleController, StaticController


def test_every_rule_based_controller_explains_itself() -> None:
    for controller in (
        HeuristicController(SLOTS),
        ScheduleController(SLOTS, Topology.CNN, B.CONV_LIGHT),
        RandomValidController(SLOTS, seed=0),
        StaticController(),
    ):
        assert isinstance(controller, ExplainingController), controller.name


def test_the_heuristic_names_its_rule_and_what_the_seed_looked_like() -> None:
    controller = HeuristicController(SLOTS)
    controller.start_episodes(1)
    with pytest.raises(InvalidStateMachineError, match=r"explain\(0\) before the env's first act"):
        controller.explain(0)
    held = slot(0, SeedStage.HOLDING, seed(metrics=SeedMetrics(contribution=0.2)))
    (action,) = controller.act([0], [observation([held, slot(1), slot(2)], epoch=2)])
    assert action == FactoredAction.prune(0)
    explanation = controller.explain(0)
    assert explanation["rule"] == "prune_low_contribution"
    signals = explanation["signals"]
    assert isinstance(signals, dict)
    assert signals["seed"] == {
        "stage": "HOLDING",
        "blueprint": "conv_light",
        "epochs_in_stage": 3,
        "alpha": 0.0,
        "contribution": 0.2,
        "accuracy_at_stage_entry": None,
        "gate_blocked_epochs": 0,
    }
    # what the rule saw, not what the prune then changed: no penalty and no embargo yet
    assert signals["blueprint_penalties"] == {} and signals["embargo_remaining"] == 0
    assert signals["plateau_epochs"] == 0 and signals["stabilized"] is False
    (action,) = controller.act([0], [observation(epoch=3)])
    explanation = controller.explain(0)
    assert explanation["rule"] == "nothing_to_do" and "seed" not in explanation["signals"]  # type: ignore[operator]
    assert explanation["signals"]["embargo_remaining"] == 4  # type: ignore[index]
    assert explanation["signals"]["blueprint_penalties"] == {"conv_light": 1.0}  # type: ignore[index]  # 2, halved


def test_the_schedule_names_the_candidate_it_took() -> None:
    controller = ScheduleController(SLOTS, Topology.CNN, B.CONV_LIGHT)
    controller.start_episodes(2)
    holding = slot(0, SeedStage.HOLDING, seed(metrics=SeedMetrics(contribution=1.0)))
    refused = LastAction(LifecycleOp.FOSSILIZE, 0, False)
    controller.act([0, 1], [observation(), observation([holding, slot(1), slot(2)], last_action=refused)])
    assert controller.explain(0) == {"rule": "germinate_when_legal", "signals": {"candidates": 1}}
    assert controller.explain(1)["rule"] == "next_after_refusal"
    controller.start_episodes(1)
    with pytest.raises(InvalidStateMachineError, match=r"explain\(0\) before the env's first act"):
        controller.explain(0)


def test_the_bundle_explains_without_changing_its_actions() -> None:
    bundle = perturbed_bundle()
    encoded = bundle.encode(varied_observations())
    hidden = bundle.initial_hidden(4)
    plain = bundle.get_action(encoded, hidden, False, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    explained = bundle.get_action(encoded, hidden, False, generator, explain=True)
    assert plain.explanation is None and explained.explanation is not None
    assert torch.equal(plain.actions, explained.actions)
    assert torch.equal(plain.log_probs, explained.log_probs)
    probabilities = explained.explanation.op_probabilities
    assert probabilities.shape == encoded.masks.op.shape
    assert torch.all(probabilities[~encoded.masks.op] == 0)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(4))
    op = HEAD_INDEX[ActionHead.OP]
    chosen = probabilities.gather(1, explained.actions[:, op].unsqueeze(1)).squeeze(1)
    assert torch.allclose(chosen, explained.log_probs[:, op].exp())  # the op's probability, as sampled
    entropy = explained.explanation.entropy
    assert entropy.shape == (4, len(HEAD_ORDER)) and bool(((entropy >= 0) & (entropy <= 1 + 1e-6)).all())
