"""Language-model tasks in the environment: token windows [N, T] with next-token targets [N, T], per-token loss
and accuracy, an epoch that samples ``epoch_examples`` windows, and the Adam optimizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from esper.kasmina import GateConfig, TransformerHostConfig
from esper.leyline import Blueprint, ConfigError, FactoredAction, LifecycleOp, SlotConfig
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.model_factories import TransformerModelFactory
from esper.simic.envs.task_data import TaskData

VOCAB = 8
CONTEXT = 6
HOST = TransformerHostConfig(VOCAB, CONTEXT, width=8, heads=1, n_blocks=2, mlp_expansion=1)
CONFIG = EnvConfig(max_epochs=4, batch_size=4, epoch_examples=8, optimizer="adam", host_lr=0.01, seed_lr=0.01)


def counting_windows(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of a counter modulo VOCAB from random starts: the next token is always the current one plus 1."""
    starts = torch.randint(0, VOCAB, (n, 1), generator=generator)
    tokens = (starts + torch.arange(CONTEXT + 1)) % VOCAB
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def token_task(n_train: int = 40, n_val: int = 12, n_test: int = 10) -> TaskData:
    generator = torch.Generator().manual_seed(0)
    splits = [counting_windows(n, generator) for n in (n_train, n_val, n_test)]
    return TaskData(*splits[0], *splits[1], *splits[2], num_classes=VOCAB)


def factory() -> TransformerModelFactory:
    return TransformerModelFactory(HOST, SlotConfig.after_blocks(2), GateConfig.for_horizon(CONFIG.max_epochs))


def test_token_windows_are_a_task_whose_every_position_is_a_target() -> None:
    task = token_task()
    assert task.targets_per_example == CONTEXT
    assert token_task(n_train=3).split_sizes() == {"train": 3, "validation": 12, "test": 10}


def test_malformed_token_tasks_are_refused_with_the_reason() -> None:
    inputs, targets = counting_windows(4, torch.Generator().manual_seed(1))
    with pytest.raises(ConfigError, match=r"train targets of token inputs must be int64 of the inputs' shape \(4, 6\)"):
        TaskData(inputs, targets[:, 0], inputs, targets, inputs, targets, num_classes=VOCAB)
    with pytest.raises(ConfigError, match=r"validation token ids must lie in \[0, 8\)"):
        TaskData(inputs, targets, inputs + VOCAB, targets, inputs, targets, num_classes=VOCAB)
    with pytest.raises(ConfigError, match=r"train inputs must be floating point \(images\) or \[N, T\] int64 token"):
        TaskData(inputs[:, :, None], targets, inputs, targets, inputs, targets, num_classes=VOCAB)
    with pytest.raises(ConfigError, match="test inputs must be floating point \\(images\\) or"):
        TaskData(inputs, targets, inputs, targets, inputs.float(), targets, num_classes=VOCAB)
    with pytest.raises(ConfigError, match="validation targets of floating-point inputs must be a 1-D int64"):
        images = torch.zeros(4, 1, 2, 2)
        TaskData(images, targets[:, 0], images, targets, images, targets[:, 0], num_classes=VOCAB)


def test_accuracy_and_loss_count_every_position_of_every_window() -> None:
    task = token_task()
    env = HostTrainingEnv(task, factory(), CONFIG)
    observation = env.reset(3)
    model = env.model
    model.eval()
    with torch.no_grad():
        logits = model(task.val_inputs)
    model.train()
    expected_accuracy = float((logits.argmax(-1) == task.val_targets).double().mean()) * 100.0
    expected_loss = float(F.cross_entropy(logits.flatten(0, 1), task.val_targets.flatten()))
    assert observation.val_accuracy == pytest.approx(expected_accuracy)
    assert observation.val_loss == pytest.approx(expected_loss, rel=1e-5)


def test_an_epoch_trains_on_epoch_examples_windows_with_adam() -> None:
    task = token_task()
    env = HostTrainingEnv(task, factory(), CONFIG)
    env.reset(3)
    assert isinstance(env._host_optimizer, torch.optim.Adam)
    assert env._host_optimizer.defaults["fused"]  # one kernel per parameter, not a Python loop of operators
    trained: list[int] = []
    handle = env.model.host.register_forward_hook(
        lambda module, args, _: trained.append(args[0].shape[0]) if module.training else None
    )
    try:
        env.step(FactoredAction.wait())
    finally:
        handle.remove()
    assert trained == [4, 4]  # 8 sampled windows in batches of 4, not the 40 of the training set
    full = HostTrainingEnv(task, factory(), EnvConfig(max_epochs=4, batch_size=16))
    full.reset(3)
    assert isinstance(full._host_optimizer, torch.optim.SGD)


def test_a_seeded_language_model_episode_learns_and_repeats_exactly() -> None:
    def episode() -> tuple[list[float], float]:
        env = HostTrainingEnv(token_task(), factory(), CONFIG)
        env.reset(5)
        germinate = FactoredAction.germinate(1, Blueprint.MLP)
        while not env.done:
            result = env.step(germinate if env.model.stages()[1].name == "DORMANT" else FactoredAction.wait())
            if result.action.op is LifecycleOp.GERMINATE:
                assert result.action_success, result.action_detail
        summary = env.summary()
        return list(summary.val_accuracy_curve), summary.test_accuracy

    curve, test_accuracy = episode()
    assert curve[-1] > curve[0] + 20  # the counter is learnable in a few Adam steps
    assert 0.0 <= test_accuracy <= 100.0
    assert episode() == (curve, test_accuracy)


def test_env_config_refuses_unknown_optimizers_and_empty_epochs() -> None:
    with pytest.raises(ConfigError, match=r"env\.optimizer must be one of sgd, adam, got 'rmsprop'"):
        EnvConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match=r"env\.epoch_examples must be >= 1"):
        EnvConfig(epoch_examples=0)
