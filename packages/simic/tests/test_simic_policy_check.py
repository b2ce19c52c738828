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
    HEAD_INDEX,
    HEAD_ORDER,
    ActionExplanation,
    ActionHead,
    ActionResult,
    EncodedObservations,
    EnvObservation,
    EvalResult,
    PolicyContractError,
    SlotConfig,
    Topology,
    head_sizes,
    mask_width,
)
from esper.leyline.protocols import HiddenState, PolicyInputs
from esper.simic.policy_check import check_policy_bundle

SLOTS = SlotConfig.after_blocks(2)
WIDTH = mask_width(head_sizes(SLOTS, Topology.CNN))


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
        self, inputs: PolicyInputs, actions: torch.Tensor, masks: torch.Tensor, hidden: HiddenState
    ) -> EvalResult:
        # Scores every step from a zero state: what a bundle that stored the wrong hidden state would do.
        steps = [
            super(_ForgetsTheHiddenState, self).evaluate_actions(
                {name: value[:, t : t + 1] for name, value in inputs.items()},
                actions[:, t : t + 1],
                masks[:, t : t + 1],
                hidden,
            )
            for t in range(actions.shape[1])
        ]
        return EvalResult(
            torch.cat([s.log_probs for s in steps], dim=1),
            torch.cat([s.entropy for s in steps], dim=1),
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


def _column(head: ActionHead, value: float) -> torch.Tensor:
    """``[H]``: ``value`` in the head's column, 0 elsewhere (added to a stacked per-head tensor)."""
    return torch.nn.functional.one_hot(torch.tensor(HEAD_INDEX[head]), len(HEAD_ORDER)) * value


class _ScoresAnIgnoredHead(_AltersItsActions):
    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        return dataclasses.replace(result, log_probs=result.log_probs - _column(ActionHead.ALPHA_CURVE, 0.1))


class _ClaimsEveryHeadMatters(_AltersItsActions):
    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        return dataclasses.replace(result, relevant=torch.ones_like(result.relevant))


class _AllowsPaddingColumns(_AltersItsActions):
    """Every column of the slot head's padded mask allowed: past its size they are no actions at all."""

    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        masks = result.masks.clone()
        masks[:, HEAD_INDEX[ActionHead.SLOT]] = True
        return dataclasses.replace(result, masks=masks)


class _UnpaddedMasks(_AltersItsActions):
    """Masks one column narrower than ``mask_width``: the update could not stack them with the stored steps."""

    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        return dataclasses.replace(result, masks=result.masks[..., :-1])


class _PerHeadActions(_AltersItsActions):
    """The seam's old shape: a mapping of per-head actions instead of one stacked tensor."""

    def alter(self, result: ActionResult, generator: torch.Generator | None, explain: bool) -> ActionResult:
        per_head = {head: result.actions[:, column] for column, head in enumerate(HEAD_ORDER)}
        return dataclasses.replace(result, actions=per_head)  # type: ignore[arg-type]  # the planted violation


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
        entropy = result.explanation.entropy + _column(ActionHead.SLOT, 2.0)
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
        (_AllowsPaddingColumns, r"get_action\(\) slot mask allows padding columns past its 2 actions"),
        (
            _UnpaddedMasks,
            rf"masks \[batch, heads, mask_width\] has shape \[3, 8, {WIDTH - 1}\], expected \[3, 8, {WIDTH}\]",
        ),
        (_PerHeadActions, r"get_action\(\) actions \[batch, heads\] is a dict, expected a tensor"),
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
