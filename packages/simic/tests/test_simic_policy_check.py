"""``check_policy_bundle`` on simic's test double: the double honours the protocol (so it cannot drift from what
the real bundles are checked against in ``tests/``), the check leaves it as it was, and each planted violation
is one ``PolicyContractError`` naming what is wrong."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch
from _simic_fixtures import TinyBundle

from esper.leyline import (
    HEAD_ORDER,
    ActionExplanation,
    ActionHead,
    ActionResult,
    EncodedObservations,
    EnvObservation,
    EvalResult,
    PolicyContractError,
    SlotConfig,
)
from esper.leyline.protocols import HiddenState, PolicyInputs
from esper.simic.policy_check import check_policy_bundle

SLOTS = SlotConfig.after_blocks(2)


def test_the_test_double_honours_the_protocol_and_is_left_as_it_was() -> None:
    bundle = TinyBundle(SLOTS)
    before = {name: tensor.clone() for name, tensor in bundle.lstm.state_dict().items()}
    mean = bundle.mean.clone()
    check_policy_bundle(bundle)
    assert all(torch.equal(before[name], tensor) for name, tensor in bundle.lstm.state_dict().items())
    assert torch.equal(bundle.mean, mean)
    assert all(parameter.grad is None for parameter in bundle.parameters())


class _ForgetsTheHiddenState(TinyBundle):
    def evaluate_actions(
        self,
        inputs: PolicyInputs,
        actions: Mapping[ActionHead, torch.Tensor],
        masks: Mapping[ActionHead, torch.Tensor],
        hidden: HiddenState,
    ) -> EvalResult:
        # Scores every step from a zero state: what a bundle that stored the wrong hidden state would do.
        steps = [
            super(_ForgetsTheHiddenState, self).evaluate_actions(
                {name: value[:, t : t + 1] for name, value in inputs.items()},
                {head: a[:, t : t + 1] for head, a in actions.items()},
                {head: m[:, t : t + 1] for head, m in masks.items()},
                hidden,
            )
            for t in range(next(iter(inputs.values())).shape[1])
        ]
        return EvalResult(
            {h: torch.cat([s.log_probs[h] for s in steps], dim=1) for h in HEAD_ORDER},
            {h: torch.cat([s.entropy[h] for s in steps], dim=1) for h in HEAD_ORDER},
            torch.cat([s.values for s in steps], dim=1),
        )


class _DropsARow(TinyBundle):
    def encode(self, observations: Sequence[EnvObservation]) -> EncodedObservations:
        encoded = super().encode(observations)
        return EncodedObservations({**encoded.inputs, "stage": encoded.inputs["stage"][1:]}, encoded.masks)


class _AltersItsActions(TinyBundle):
    """A double whose ``get_action`` returns the honest result as changed by ``alter`` (the planted violation)."""

    def get_action(
        self,
        observations: EncodedObservations,
        hidden: HiddenState,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        explain: bool = False,
    ) -> ActionResult:
        result = super().get_action(observations, hidden, deterministic, generator, explain)
        return self.alter(result, generator, explain)

    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        return result


class _ScoresAnIgnoredHead(_AltersItsActions):
    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        log_probs = {**result.log_probs, ActionHead.ALPHA_CURVE: result.log_probs[ActionHead.ALPHA_CURVE] - 0.1}
        return dataclasses.replace(result, log_probs=log_probs)


class _ClaimsEveryHeadMatters(_AltersItsActions):
    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        everything = {head: torch.ones_like(relevant) for head, relevant in result.relevant.items()}
        return dataclasses.replace(result, relevant=everything)


class _UnsavableConfig(TinyBundle):
    def build_config(self) -> dict[str, Any]:
        return {**super().build_config(), "device": torch.device("cpu")}


class _ForgetsItsState(TinyBundle):
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.mean = self.mean + 1.0


class _ExplainsByDrawing(_AltersItsActions):
    """Its explanation costs a draw from the rollout generator: switching records on would change the rollout."""

    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        if explain:
            torch.rand(1, generator=generator)
        return result


class _ExplainsWithUnnormalizedEntropy(_AltersItsActions):
    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        if result.explanation is None:
            return result
        entropy = {**result.explanation.entropy, ActionHead.SLOT: result.explanation.entropy[ActionHead.SLOT] + 2.0}
        explanation = ActionExplanation(result.explanation.op_probabilities, entropy)
        return dataclasses.replace(result, explanation=explanation)


@pytest.mark.parametrize(
    ("double", "message"),
    [
        (_ExplainsByDrawing, r"get_action\(explain=True\) drew from the generator more than get_action\(\) does"),
        (_ExplainsWithUnnormalizedEntropy, r"explanation slot entropy must be normalized to \[0, 1\]"),
        (_ForgetsTheHiddenState, r"evaluate_actions\(\) scores the stored \w+ actions differently from get_action"),
        (_DropsARow, r"encode\(\) input 'stage' has shape \[2, 2\], expected \[3, ...\]"),
        (_ScoresAnIgnoredHead, r"alpha_curve log-probs must be (finite and <= 0|exactly 0 where the op ignores it)"),
        (_ClaimsEveryHeadMatters, r"\w+ relevance differs from leyline's CAUSAL_RELEVANCE for the chosen ops"),
        (_UnsavableConfig, r"build_config\(\) is not JSON-serializable"),
        (_ForgetsItsState, r"state_dict\(\) after load_state_dict\(state\) differs"),
    ],
)
def test_each_planted_violation_is_named(double: type[TinyBundle], message: str) -> None:
    with pytest.raises(PolicyContractError, match=message):
        check_policy_bundle(double(SLOTS))


def test_an_object_without_the_members_is_not_a_bundle() -> None:
    with pytest.raises(PolicyContractError, match=r"object is not a PolicyBundle: it lacks \[.*'evaluate_actions'"):
        check_policy_bundle(object())
