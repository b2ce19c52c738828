"""Heads, value tables, causal relevance, placeholders and the FactoredAction value type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.leyline import (
    ALPHA_SPEED_TICKS,
    CAUSAL_RELEVANCE,
    HEAD_INDEX,
    HEAD_ORDER,
    HEAD_PLACEHOLDERS,
    STYLE_TABLE,
    TEMPO_EPOCHS,
    TOPOLOGY_BLUEPRINTS,
    ActionHead,
    AlphaCurve,
    AlphaSpeed,
    AlphaTarget,
    BlendOperator,
    BlendStyle,
    Blueprint,
    ConfigError,
    FactoredAction,
    LifecycleOp,
    SlotConfig,
    Tempo,
    Topology,
    blueprint_from_name,
    head_sizes,
    is_relevant,
    mask_width,
    relevance_rows,
)

H = ActionHead


def test_head_order_is_fixed() -> None:
    assert [h.value for h in HEAD_ORDER] == [
        "slot",
        "blueprint",
        "style",
        "tempo",
        "alpha_target",
        "alpha_speed",
        "alpha_curve",
        "op",
    ]
    assert [HEAD_INDEX[h] for h in HEAD_ORDER] == list(range(len(HEAD_ORDER)))  # column i is HEAD_ORDER[i]


def test_head_sizes() -> None:
    sizes = head_sizes(SlotConfig.after_blocks(3), Topology.CNN)
    assert list(sizes) == list(HEAD_ORDER)
    assert sizes == {
        H.SLOT: 3,
        H.BLUEPRINT: 8,
        H.STYLE: 4,
        H.TEMPO: 3,
        H.ALPHA_TARGET: 3,
        H.ALPHA_SPEED: 4,
        H.ALPHA_CURVE: 5,
        H.OP: 6,
    }
    assert head_sizes(SlotConfig.from_ids(["r0c0", "r1c0"]), Topology.TRANSFORMER)[H.BLUEPRINT] == 7
    assert mask_width(sizes) == 8  # the largest head (blueprint)
    assert mask_width(head_sizes(SlotConfig.after_blocks(12), Topology.CNN)) == 12  # the slot head, with 12 slots


def test_value_tables() -> None:
    assert TEMPO_EPOCHS == {Tempo.FAST: 3, Tempo.STANDARD: 5, Tempo.SLOW: 8}
    assert ALPHA_SPEED_TICKS == {AlphaSpeed.INSTANT: 0, AlphaSpeed.FAST: 3, AlphaSpeed.MEDIUM: 5, AlphaSpeed.SLOW: 8}
    assert set(STYLE_TABLE) == set(BlendStyle)
    assert STYLE_TABLE[BlendStyle.LINEAR_MULTIPLY] == (AlphaCurve.LINEAR, BlendOperator.MULTIPLY)
    assert STYLE_TABLE[BlendStyle.GATED_GATE][1] is BlendOperator.GATE
    assert {op for _, op in STYLE_TABLE.values()} == set(BlendOperator)


def test_topology_blueprints() -> None:
    cnn = TOPOLOGY_BLUEPRINTS[Topology.CNN]
    assert cnn[0] is Blueprint.NOOP
    assert [b.registry_name for b in cnn[1:]] == [
        "norm",
        "attention",
        "depthwise",
        "bottleneck",
        "conv_small",
        "conv_light",
        "conv_heavy",
    ]
    assert TOPOLOGY_BLUEPRINTS[Topology.TRANSFORMER][0] is Blueprint.NOOP
    assert blueprint_from_name("conv_light") is Blueprint.CONV_LIGHT
    with pytest.raises(ValueError, match="unknown blueprint 'conv_huge'"):
        blueprint_from_name("conv_huge")


def test_causal_relevance_matches_the_spec() -> None:
    assert CAUSAL_RELEVANCE[LifecycleOp.WAIT] == {H.OP}
    assert CAUSAL_RELEVANCE[LifecycleOp.GERMINATE] == {H.OP, H.SLOT, H.BLUEPRINT, H.STYLE, H.TEMPO, H.ALPHA_TARGET}
    assert CAUSAL_RELEVANCE[LifecycleOp.SET_ALPHA_TARGET] == {
        H.OP,
        H.SLOT,
        H.STYLE,
        H.ALPHA_TARGET,
        H.ALPHA_SPEED,
        H.ALPHA_CURVE,
    }
    assert CAUSAL_RELEVANCE[LifecycleOp.PRUNE] == {H.OP, H.SLOT, H.ALPHA_SPEED, H.ALPHA_CURVE}
    assert CAUSAL_RELEVANCE[LifecycleOp.FOSSILIZE] == {H.OP, H.SLOT}
    assert CAUSAL_RELEVANCE[LifecycleOp.ADVANCE] == {H.OP, H.SLOT}
    rows = relevance_rows()
    assert len(rows) == len(LifecycleOp)
    for op in LifecycleOp:
        for j, head in enumerate(HEAD_ORDER):
            assert rows[op][j] == is_relevant(op, head)


def test_placeholders_match_the_spec() -> None:
    assert HEAD_PLACEHOLDERS == {
        H.BLUEPRINT: 0,
        H.STYLE: BlendStyle.SIGMOID_ADD,
        H.TEMPO: Tempo.STANDARD,
        H.ALPHA_TARGET: AlphaTarget.FULL,
        H.ALPHA_SPEED: AlphaSpeed.INSTANT,
        H.ALPHA_CURVE: AlphaCurve.LINEAR,
    }
    for topology, blueprints in TOPOLOGY_BLUEPRINTS.items():
        assert blueprints[HEAD_PLACEHOLDERS[H.BLUEPRINT]] is Blueprint.NOOP, topology


def test_germinate_needs_a_blueprint() -> None:
    with pytest.raises(ConfigError, match="NOOP is never valid for GERMINATE"):
        FactoredAction(LifecycleOp.GERMINATE, slot=0)
    with pytest.raises(ConfigError, match="slot index"):
        FactoredAction(LifecycleOp.ADVANCE, slot=-1)


def test_canonical_resets_irrelevant_heads() -> None:
    noisy = FactoredAction(
        LifecycleOp.PRUNE,
        slot=2,
        blueprint=Blueprint.CONV_HEAVY,
        style=BlendStyle.GATED_GATE,
        tempo=Tempo.SLOW,
        alpha_target=AlphaTarget.HALF,
        alpha_speed=AlphaSpeed.SLOW,
        alpha_curve=AlphaCurve.COSINE,
    )
    assert noisy.canonical() == FactoredAction.prune(2, AlphaSpeed.SLOW, AlphaCurve.COSINE)
    assert FactoredAction(LifecycleOp.WAIT, slot=2, tempo=Tempo.FAST).canonical() == FactoredAction.wait()


def test_head_indices_reject_blueprint_of_other_topology() -> None:
    action = FactoredAction.germinate(0, Blueprint.CONV_LIGHT)
    with pytest.raises(ConfigError, match="not a transformer blueprint"):
        action.head_indices(Topology.TRANSFORMER)


def test_from_head_indices_errors() -> None:
    with pytest.raises(ConfigError, match="missing heads"):
        FactoredAction.from_head_indices({H.OP: 0}, Topology.CNN)
    indices = FactoredAction.wait().head_indices(Topology.CNN)
    with pytest.raises(ConfigError, match="blueprint index 99"):
        FactoredAction.from_head_indices({**indices, H.BLUEPRINT: 99}, Topology.CNN)
    with pytest.raises(ConfigError, match="out of range"):
        FactoredAction.from_head_indices({**indices, H.OP: 17}, Topology.CNN)


@given(
    op=st.sampled_from(LifecycleOp),
    slot=st.integers(0, 5),
    blueprint=st.sampled_from(TOPOLOGY_BLUEPRINTS[Topology.CNN][1:]),
    style=st.sampled_from(BlendStyle),
    tempo=st.sampled_from(Tempo),
    target=st.sampled_from(AlphaTarget),
    speed=st.sampled_from(AlphaSpeed),
    curve=st.sampled_from(AlphaCurve),
)
def test_head_indices_round_trip(
    op: LifecycleOp,
    slot: int,
    blueprint: Blueprint,
    style: BlendStyle,
    tempo: Tempo,
    target: AlphaTarget,
    speed: AlphaSpeed,
    curve: AlphaCurve,
) -> None:
    action = FactoredAction(op, slot, blueprint, style, tempo, target, speed, curve)
    indices = action.head_indices(Topology.CNN)
    assert list(indices) == list(HEAD_ORDER)
    assert FactoredAction.from_head_indices(indices, Topology.CNN) == action
    canonical = action.canonical()
    assert canonical.canonical() == canonical
    for head, index in canonical.head_indices(Topology.CNN).items():
        if head is H.OP or is_relevant(op, head):
            assert index == indices[head]
        elif head is H.SLOT:
            assert index == 0
        else:
            assert index == HEAD_PLACEHOLDERS[head]
