"""Where an act call's time goes in context (benchmark 2 with ``--profile``): ``encode + get_action`` timed with
one part at a time replaced by its precomputed result, interleaved with the unchanged call and the bare network.

Timing a part alone flatters it: a few hundred small numpy and torch calls stay in the caches when one of them
runs in a loop, and do not when the whole act path does (issue 19 measured each call at 2-3 times its isolated
cost). Replacing a part inside the real loop measures what the loop would save without it. The parts are the
names ``LSTMPolicyBundle`` calls (``esper.tamiyo.policy.lstm_bundle``); each is swapped for the duration of one
timed call and restored right after, so the interleaved cases never see each other's replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

import esper.tamiyo.policy.lstm_bundle as bundle_module
from benchmarks.timing import Case, Work
from esper.leyline import EnvObservation
from esper.tamiyo import LSTMPolicyBundle
from esper.tamiyo.encoding.features import encode_columns
from esper.tamiyo.encoding.masks import masks_of_columns
from esper.tamiyo.encoding.observation_columns import read_columns
from esper.tamiyo.policy.factored_heads import sample_actions

#: The parts, by the name ``lstm_bundle`` calls each under, in the order an act call runs them.
PARTS: dict[str, str] = {
    "read_columns": "reading the observations into columns",
    "encode_columns": "features from the columns",
    "masks_of_columns": "masks from the columns",
    "sample_actions": "sampling (every head, under its masks)",
}


def replaced(name: str, envs: int) -> str:
    """The case name of the act call for ``envs`` envs with part ``name`` replaced ("" = nothing replaced)."""
    return f"act, {name or 'nothing'} replaced, {envs} envs"


def part_cases(
    bundle: LSTMPolicyBundle, batch: list[EnvObservation], steady: Callable[[str, Work], Case]
) -> list[Case]:
    """``encode + get_action`` on ``batch`` as is, with each part of ``PARTS`` replaced, and with all of them."""
    hidden = bundle.initial_hidden(len(batch))
    generator = torch.Generator(device=bundle.device).manual_seed(len(batch))
    results = _part_results(bundle, batch, hidden, generator)

    def act() -> object:
        return bundle.get_action(bundle.encode(batch), hidden, False, generator)

    def without(names: tuple[str, ...]) -> Work:
        def work() -> object:
            with _returning({name: results[name] for name in names}):
                return act()

        return work

    envs = len(batch)
    cases = [steady(replaced("", envs), act)]
    cases += [steady(replaced(name, envs), without((name,))) for name in PARTS]
    cases.append(steady(replaced("all", envs), without(tuple(PARTS))))
    return cases


def _part_results(
    bundle: LSTMPolicyBundle,
    batch: list[EnvObservation],
    hidden: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
) -> dict[str, object]:
    """What each part returns for ``batch`` (computed once, by the functions the bundle calls)."""
    columns = read_columns(batch, bundle.slot_config)
    encoded = bundle.encode(batch)
    with torch.inference_mode():
        logits = bundle.network(
            encoded.inputs["features"].unsqueeze(1), encoded.inputs["blueprint_indices"].unsqueeze(1), hidden
        ).logits[:, 0]
        sampled = sample_actions(logits, encoded.masks, bundle.network.layout, deterministic=False, generator=generator)
    return {
        "read_columns": columns,
        "encode_columns": encode_columns(columns),
        "masks_of_columns": masks_of_columns(columns, bundle.topology),
        "sample_actions": sampled,
    }


@contextmanager
def _returning(results: dict[str, object]) -> Iterator[None]:
    """Inside the block, each named function of ``lstm_bundle`` returns its precomputed result."""
    originals = {name: getattr(bundle_module, name) for name in results}
    for name, result in results.items():
        setattr(bundle_module, name, _constant(result))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(bundle_module, name, original)


def _constant(result: object) -> Callable[..., object]:
    def precomputed(*_args: object, **_kwargs: object) -> object:
        return result

    return precomputed
