"""The transformer host: presets, slot sites after its blocks, deterministic init, causality, and empty slots
computing exactly the bare host."""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import one_thread  # noqa: F401  (autouse fixture)
from torch import nn

from esper.kasmina import (
    TRANSFORMER_HOST_PRESETS,
    MorphogeneticModel,
    TransformerHost,
    TransformerHostConfig,
)
from esper.leyline import ConfigError, SlotConfig, Topology

TINY = TransformerHostConfig(vocab_size=13, context=12, width=16, heads=2, n_blocks=3, mlp_expansion=2)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tokens(seed: int = 0, batch: int = 3, length: int = 12, vocab: int = 13) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def _expected_params(config: TransformerHostConfig) -> int:
    w, v, hidden = config.width, config.vocab_size, config.mlp_expansion * config.width
    attention = 2 * w + (3 * w * w + 3 * w) + (w * w + w) if config.heads else 0
    block = attention + 2 * w + (w * hidden + hidden) + (hidden * w + w)
    return v * w + config.context * w + config.n_blocks * block + 2 * w + (w * v + v)


@pytest.mark.parametrize("name", sorted(TRANSFORMER_HOST_PRESETS))
def test_presets_are_byte_level_context_64_models_of_the_expected_size(name: str) -> None:
    config = TransformerHostConfig.preset(name)
    assert (config.vocab_size, config.context) == (256, 64)
    host = TransformerHost.create(config, torch.Generator().manual_seed(0))
    assert _count(host) == _expected_params(config)
    tokens = torch.randint(0, 256, (2, 64))
    assert host(tokens).shape == (2, 64, 256)


def test_the_impaired_preset_is_narrower_than_the_small_one_and_has_no_attention() -> None:
    small, impaired = TransformerHostConfig.preset("bytes_small"), TransformerHostConfig.preset("bytes_impaired")
    assert impaired.width < small.width and impaired.heads == 0
    generator = torch.Generator().manual_seed(0)
    assert _count(TransformerHost.create(impaired, generator)) < _count(TransformerHost.create(small, generator))
    with pytest.raises(ConfigError, match="known: bytes_small"):
        TransformerHostConfig.preset("gpt2")


def test_slots_sit_after_each_block_with_the_residual_width() -> None:
    model = MorphogeneticModel.from_transformer_config(TINY, seed=0)
    assert model.topology is Topology.TRANSFORMER
    assert [str(s) for s in model.slot_config.slot_ids] == ["r0c0", "r0c1", "r0c2"]
    assert TINY.slot_sites(model.slot_config) == {"r0c0": "blocks.0", "r0c1": "blocks.1", "r0c2": "blocks.2"}
    assert [model.slot(f"r0c{i}").channels for i in range(3)] == [16, 16, 16]
    with pytest.raises(ConfigError, match=r"r0c0\.\.r0c2"):
        TINY.slot_sites(SlotConfig.from_ids(["r0c3"]))
    with pytest.raises(ConfigError, match="does not exist"):
        TINY.slot_sites(SlotConfig.from_ids(["r1c0"]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 15}, "divisible by heads"),
        ({"heads": -1}, "heads must be >= 0"),
        ({"vocab_size": 1}, "vocab_size must be >= 2"),
        ({"context": 0}, "context must be >= 1"),
        ({"n_blocks": 0}, "n_blocks must be >= 1"),
        ({"mlp_expansion": 0}, "mlp_expansion must be >= 1"),
    ],
)
def test_bad_configs_are_refused(changes: dict[str, int], message: str) -> None:
    fields = {"vocab_size": 13, "context": 12, "width": 16, "heads": 2, "n_blocks": 3, "mlp_expansion": 2}
    with pytest.raises(ConfigError, match=message):
        TransformerHostConfig(**(fields | changes))


def test_a_sequence_longer_than_the_context_is_refused() -> None:
    host = TransformerHost.create(TINY, torch.Generator().manual_seed(0))
    assert host(_tokens(length=5)).shape == (3, 5, 13)
    with pytest.raises(ConfigError, match="longer than the host's context 12"):
        host(_tokens(length=13))


def test_init_comes_from_the_callers_generator_only() -> None:
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    first = MorphogeneticModel.from_transformer_config(TINY, seed=4)
    second = MorphogeneticModel.from_transformer_config(TINY, seed=4)
    other = MorphogeneticModel.from_transformer_config(TINY, seed=5)
    assert torch.equal(torch.get_rng_state(), global_state)
    for a, b in zip(first.host.state_dict().values(), second.host.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for name in ("token_embedding.weight", "position_embedding.weight", "blocks.0.attn.qkv.weight"):
        assert not torch.equal(first.host.get_parameter(name), other.host.get_parameter(name))
    assert first.host.get_parameter("token_embedding.weight").std().item() == pytest.approx(0.02, rel=0.2)


def test_the_host_never_looks_at_a_later_token() -> None:
    host = TransformerHost.create(TINY, torch.Generator().manual_seed(0))
    tokens = _tokens()
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 13
    before, after = host(tokens), host(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6], rtol=0, atol=0)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_a_host_without_attention_predicts_each_token_from_itself_and_its_position_only() -> None:
    """``heads = 0``: no token mixing, so changing token 6 changes the logits at position 6 and nowhere else (the
    impaired preset leaves reading further back to what grows)."""
    config = TransformerHostConfig(vocab_size=13, context=12, width=16, heads=0, n_blocks=2, mlp_expansion=1)
    host = TransformerHost.create(config, torch.Generator().manual_seed(0))
    assert all(block.attn is None for block in host.blocks)
    assert _count(host) == _expected_params(config)
    tokens = _tokens()
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 13
    before, after = host(tokens), host(changed)
    unchanged = [t for t in range(12) if t != 6]
    torch.testing.assert_close(before[:, unchanged], after[:, unchanged], rtol=0, atol=0)
    assert not torch.allclose(before[:, 6], after[:, 6])


@pytest.mark.parametrize("training", [True, False])
def test_empty_slots_compute_exactly_the_host(training: bool) -> None:
    model = MorphogeneticModel.from_transformer_config(TINY, seed=0)
    bare = TransformerHost.create(TINY, torch.Generator().manual_seed(0))
    model.train(training)
    bare.train(training)
    tokens = _tokens(1)
    assert torch.equal(model(tokens), bare(tokens))
