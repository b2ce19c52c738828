"""Hosts: the CNN family and its presets, empty slots computing exactly the host, and bring-your-own-host on
modules the tests define (CNN and transformer), plus a torchvision ResNet when torchvision is installed."""

from __future__ import annotations

import pytest
import torch
from _kasmina_fixtures import (
    ALL_DIGITS_SLOTS,
    DIGITS,
    FAST_GATES,
    batch,
    digits_model,
    ok,
    one_thread,  # noqa: F401  (autouse fixture)
    perturb_seed,
    to_blending,
    to_training,
)
from torch import Tensor, nn
from torch.nn import functional as F

from esper.kasmina import CNN_HOST_PRESETS, CNNHost, CNNHostConfig, MorphogeneticModel
from esper.leyline import (
    EMBARGO_EPOCHS,
    MIN_PRUNE_AGE,
    RESET_EPOCHS,
    BlendStyle,
    Blueprint,
    FactoredAction,
    SeedStage,
    SlotConfig,
    Topology,
)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_presets_match_the_documented_parameter_counts() -> None:
    generator = torch.Generator().manual_seed(0)
    assert _count(CNNHost.create(CNNHostConfig.preset("cifar_baseline"), generator)) == 6418
    assert _count(CNNHost.create(CNNHostConfig.preset("cifar_impaired"), generator)) == 77
    assert set(CNN_HOST_PRESETS) == {"digits_impaired", "digits_strong", "cifar_baseline", "cifar_impaired"}
    with pytest.raises(ValueError, match="known: digits_impaired"):
        CNNHostConfig.preset("imagenet")


@pytest.mark.parametrize(("name", "size"), [("digits_impaired", 8), ("digits_strong", 8), ("cifar_baseline", 32)])
def test_presets_run_on_their_images(name: str, size: int) -> None:
    config = CNNHostConfig.preset(name)
    model = MorphogeneticModel.from_cnn_config(config, seed=0, image_size=size)
    assert model(torch.zeros(2, config.in_channels, size, size)).shape == (2, 10)
    assert [s.channels for s in model._slots] == [config.block_channels(i) for i in range(config.n_blocks)]


@pytest.mark.parametrize("training", [True, False])
def test_empty_slots_compute_exactly_the_host(training: bool) -> None:
    host = CNNHost.create(DIGITS, torch.Generator().manual_seed(5))
    model = digits_model(seed=5, slot_config=ALL_DIGITS_SLOTS)
    host.train(training)
    model.train(training)
    x, _ = batch()
    assert torch.equal(model(x), host(x))


def test_a_slot_emptied_by_prune_computes_the_host_again() -> None:
    host = CNNHost.create(DIGITS, torch.Generator().manual_seed(5))
    model = digits_model(seed=5)
    to_blending(model, 0)
    perturb_seed(model, "r0c0")
    model.tick()
    host.eval()
    model.eval()
    host.load_state_dict(model.host.state_dict())
    x, _ = batch()
    assert not torch.equal(model(x), host(x))
    for _ in range(MIN_PRUNE_AGE):
        model.tick()
    ok(model.execute(FactoredAction.prune(0), 20.0))
    assert torch.equal(model(x), host(x))
    for _ in range(EMBARGO_EPOCHS + RESET_EPOCHS + 1):
        model.tick()
    assert model.stages()[0] is SeedStage.DORMANT
    assert torch.equal(model(x), host(x))


def test_cnn_slot_sites() -> None:
    assert DIGITS.slot_sites(ALL_DIGITS_SLOTS) == {
        "r0c0": "blocks.0",
        "r0c1": "blocks.1",
        "r0c2": "blocks.2",
        "r1c0": "pools.0",
        "r1c1": "pools.1",
    }
    with pytest.raises(ValueError, match="r1c2 does not exist"):
        DIGITS.slot_sites(SlotConfig.from_ids(["r1c2"]))


def test_bad_host_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        CNNHostConfig(1, 10, 1, 2, 3, 2)
    with pytest.raises(ValueError, match="pool_layers"):
        CNNHostConfig(1, 10, 1, 1, 3, 4)


class TinyNet(nn.Module):
    """A user's own model: nothing Esper-specific about it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(2, 5)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.features(x).mean(dim=(2, 3)))
        return out


def test_bring_your_own_host() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    x = torch.randn(6, 3, 12, 12)
    reference = net(x)
    model = MorphogeneticModel.wrap(
        net, {"r0c1": "features.3", "r0c0": "features.1"}, example_input=torch.zeros(1, 3, 12, 12), seed=0
    )
    assert model.slot_config.names() == ("r0c0", "r0c1")
    assert [model.slot(s).channels for s in ("r0c0", "r0c1")] == [4, 2]
    assert torch.equal(model(x), reference)
    to_training(model, 1, Blueprint.CONV_LIGHT, BlendStyle.GATED_GATE)
    assert torch.equal(model(x), reference)  # the incubator
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.autograd.backward(F.cross_entropy(model(x), torch.arange(6) % 5))
    model.observe_seed_gradients()
    optimizer.step()
    assert model.slot_reports()[1].seed is not None


def test_wrap_errors_name_the_problem() -> None:
    net = TinyNet()
    example = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"no submodule 'features\.9'"):
        MorphogeneticModel.wrap(net, {"r0c0": "features.9"}, example, seed=0)
    with pytest.raises(ValueError, match="rank-4"):
        MorphogeneticModel.wrap(net, {"r0c0": "head"}, example, seed=0)
    with pytest.raises(ValueError, match="used twice"):
        MorphogeneticModel.wrap(net, {"r0c0": "features.1", "r0c1": "features.1"}, example, seed=0)
    shared = nn.Sequential(nn.Conv2d(3, 3, 1))
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(ValueError, match="ran 2 times"):
        MorphogeneticModel.wrap(twice, {"r0c0": "0"}, example, seed=0)


def test_probe_touches_neither_batchnorm_statistics_nor_train_flags() -> None:
    host = CNNHost.create(DIGITS, torch.Generator().manual_seed(0))
    host.blocks[0].eval()
    before = {k: v.clone() for k, v in host.state_dict().items()}
    flags = [m.training for m in host.modules()]
    MorphogeneticModel(host, {"r0c0": "blocks.0"}, torch.randn(4, 1, 8, 8), seed=0)
    assert all(torch.equal(v, host.state_dict()[k]) for k, v in before.items())
    assert [m.training for m in host.modules()] == flags


class TinyLM(nn.Module):
    """A token model with position-wise blocks: [B, T] token ids -> [B, T, vocab] logits."""

    def __init__(self, vocab: int = 11, width: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.block0 = nn.Sequential(nn.Linear(width, width), nn.GELU())
        self.block1 = nn.Sequential(nn.Linear(width, width), nn.GELU())
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        out: Tensor = self.head(self.block1(self.block0(self.embed(tokens))))
        return out


@pytest.mark.parametrize("blueprint", [Blueprint.ATTENTION, Blueprint.LORA, Blueprint.MLP, Blueprint.NORM])
@pytest.mark.parametrize("style", [BlendStyle.LINEAR_ADD, BlendStyle.GATED_GATE, BlendStyle.LINEAR_MULTIPLY])
def test_transformer_host_with_seeds_stays_causal(blueprint: Blueprint, style: BlendStyle) -> None:
    torch.manual_seed(1)
    lm = TinyLM()
    tokens = torch.randint(0, 11, (3, 10))
    model = MorphogeneticModel.wrap(
        lm, {"r0c0": "block0", "r0c1": "block1"}, tokens[:1], seed=0, topology=Topology.TRANSFORMER
    )
    reference = lm(tokens)
    assert torch.equal(model(tokens), reference)
    to_training(model, 0, blueprint, style)
    perturb_seed(model, "r0c0")
    model.slot("r0c0").stage = SeedStage.BLENDING  # test shortcut: blend for real at alpha 0.8
    model.slot("r0c0").require_seed().alpha.value = 0.8
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 11
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before, reference)


class BasicBlock(nn.Module):
    """A torchvision-style residual block: conv-BN-ReLU-conv-BN, plus the (downsampled) input, ReLU."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))
            if stride != 1 or channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        return torch.relu(out)


class MiniResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(4, 4, 1), BasicBlock(4, 4, 1))
        self.layer2 = nn.Sequential(BasicBlock(4, 8, 2), BasicBlock(8, 8, 1))
        self.fc = nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(self.layer2(self.layer1(self.stem(x))).mean(dim=(2, 3)))
        return out


def test_a_resnet_style_block_stack_as_a_host() -> None:
    torch.manual_seed(3)
    net = MiniResNet()
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4)
    sites = {"r0c0": "layer1.0", "r0c1": "layer1", "r0c2": "layer2"}
    model = MorphogeneticModel.wrap(net, sites, torch.zeros(1, 3, 16, 16), seed=0, gate_config=FAST_GATES)
    assert [model.slot(s).channels for s in sites] == [4, 4, 8]
    reference = net(x)  # no seed yet: the host's own forward
    assert torch.equal(model(x), reference)
    to_training(model, 2, Blueprint.BOTTLENECK)
    torch.autograd.backward(F.cross_entropy(model(x), y))
    model.observe_seed_gradients()
    model.tick()
    ok(model.execute(FactoredAction.advance(2), 10.0))  # BLENDING at alpha 0: seeds develop one at a time
    to_training(model, 0, Blueprint.DEPTHWISE)
    perturb_seed(model, "r0c2")
    perturb_seed(model, "r0c0")
    assert torch.equal(model(x), net(x))
    torch.autograd.backward(F.cross_entropy(model(x), y))
    model.observe_seed_gradients()
    reports = model.slot_reports()
    assert all(r.seed is not None and r.seed.metrics.gradient_health is not None for r in (reports[0], reports[2]))


def test_torchvision_resnet_as_a_host() -> None:
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=10)
    example = torch.zeros(1, 3, 32, 32)
    model = MorphogeneticModel.wrap(net, {"r0c0": "layer1", "r0c1": "layer2", "r0c2": "layer3"}, example, seed=0)
    model.eval()
    net.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), net(x))
    to_training(model, 1)
    assert model.slot("r0c1").channels == 128
    assert torch.equal(model(x), net(x))
