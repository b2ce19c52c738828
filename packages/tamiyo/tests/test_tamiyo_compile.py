"""``torch.compile(fullgraph=True)`` of the network's forward works on CPU, matches eager, and a compiled bundle's
checkpoint round-trips both ways. One small compiled graph (batch 4, one step) keeps this to ~20 s."""

from __future__ import annotations

import shutil

import pytest
import torch
from _tamiyo_fixtures import SLOTS, perturbed_bundle, varied_observations

from esper.leyline import ActionResult
from esper.tamiyo import LSTMPolicyBundle

# Inductor's CPU backend compiles generated C++; without a C++ compiler there is nothing to test.
pytestmark = [
    pytest.mark.compile,
    pytest.mark.skipif(
        shutil.which("g++") is None and shutil.which("c++") is None, reason="no C++ compiler for torch inductor"
    ),
]


def _act(bundle: LSTMPolicyBundle) -> ActionResult:
    return bundle.get_action(bundle.encode(varied_observations()), bundle.initial_hidden(4), deterministic=True)


def _assert_same(result: ActionResult, expected: ActionResult) -> None:
    assert torch.equal(result.actions, expected.actions)
    torch.testing.assert_close(result.log_probs, expected.log_probs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.values, expected.values, rtol=1e-5, atol=1e-5)


def test_fullgraph_compile_matches_eager_and_round_trips_checkpoints() -> None:
    trained = perturbed_bundle()
    eager = _act(trained)

    compiled = LSTMPolicyBundle(SLOTS)
    compiled.compile("default")  # fullgraph=True: any graph break in forward() raises here, at the first call
    compiled.load_state_dict(trained.state_dict())  # loading into a compiled bundle
    _assert_same(_act(compiled), eager)

    state = compiled.state_dict()
    assert not any("_orig_mod" in name for name in state["network"])
    restored = LSTMPolicyBundle(SLOTS)
    restored.load_state_dict(state)  # a compiled bundle's checkpoint loads into a plain one
    _assert_same(_act(restored), eager)
