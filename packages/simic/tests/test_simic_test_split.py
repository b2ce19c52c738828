"""The test set: evaluated once, at the end of an episode, on the model the episode ends with, and seen by nothing
that acts or learns (observations, rewards, lifecycle, governor)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _simic_fixtures import grow_first_slot, stripes_factory, stripes_task

from esper.leyline import ConfigError, InvalidStateMachineError
from esper.simic.envs.env_config import EnvConfig
from esper.simic.envs.episode_records import EpisodeSummary, StepResult
from esper.simic.envs.host_training_env import HostTrainingEnv
from esper.simic.envs.task_data import TaskData

CONFIG = EnvConfig(max_epochs=8, batch_size=32, host_lr=0.05, seed_lr=0.05)


def run(task: TaskData, seed: int = 1) -> tuple[list[StepResult], EpisodeSummary, HostTrainingEnv]:
    env = HostTrainingEnv(task, stripes_factory(), CONFIG)
    observation = env.reset(seed)
    results = []
    while not env.done:
        result = env.step(grow_first_slot(observation))
        results.append(result)
        observation = result.observation
    return results, env.summary(), env


def test_replacing_the_test_set_changes_nothing_but_the_reported_test_accuracy() -> None:
    task = stripes_task()
    generator = torch.Generator().manual_seed(7)
    scrambled = dataclasses.replace(
        task,
        test_inputs=torch.randn(50, *task.train_inputs.shape[1:], generator=generator) * 5,
        test_targets=torch.randint(0, 2, (50,), generator=generator),
    )
    results, summary, _ = run(task)
    other_results, other_summary, _ = run(scrambled)
    assert summary.germinated == 1  # the episode really grew, so the lifecycle was exercised
    for a, b in zip(results, other_results, strict=True):
        assert a.observation == b.observation
        assert a.reward == b.reward and a.reward_terms == b.reward_terms
        assert (a.action, a.action_success, a.action_detail) == (b.action, b.action_success, b.action_detail)
        assert (a.train_loss, a.rolled_back, a.events, a.terminal) == (
            b.train_loss,
            b.rolled_back,
            b.events,
            b.terminal,
        )
    assert summary.test_accuracy != other_summary.test_accuracy
    assert dataclasses.replace(other_summary, test_accuracy=summary.test_accuracy) == summary


def test_the_test_accuracy_is_the_final_model_on_the_test_set() -> None:
    """With the validation images as the test set, the test accuracy equals the final validation accuracy: it
    is measured on the model of the last step, in the configuration validation reports."""
    task = stripes_task()
    mirrored = dataclasses.replace(task, test_inputs=task.val_inputs, test_targets=task.val_targets)
    _, summary, env = run(mirrored)
    assert summary.test_accuracy == pytest.approx(summary.final_val_accuracy)
    _, summary, env = run(task)
    env.model.eval()
    with torch.no_grad():
        predictions = env.model(task.test_inputs).argmax(dim=1)
    assert summary.test_accuracy == pytest.approx(100.0 * float((predictions == task.test_targets).float().mean()))
    assert 0.0 <= summary.test_accuracy <= 100.0


def test_no_summary_and_no_test_accuracy_before_the_episode_ends() -> None:
    """NaN test images would make every figure computed from them meaningless; the episode runs exactly as with
    clean ones, and the summary exists only once the episode has ended."""
    task = stripes_task()
    poisoned = dataclasses.replace(task, test_inputs=torch.full_like(task.test_inputs, float("nan")))
    env = HostTrainingEnv(poisoned, stripes_factory(), CONFIG)
    observation = env.reset(2)
    with pytest.raises(InvalidStateMachineError, match="before the episode ended"):
        env.summary()
    results = []
    while not env.done:
        result = env.step(grow_first_slot(observation))
        results.append(result)
        observation = result.observation
    clean, clean_summary, _ = run(task, seed=2)
    assert [r.observation for r in results] == [r.observation for r in clean]
    assert [r.reward for r in results] == [r.reward for r in clean]
    assert env.summary().final_val_accuracy == clean_summary.final_val_accuracy


def test_task_data_needs_a_test_set_like_the_others() -> None:
    task = stripes_task()
    with pytest.raises(ConfigError, match="test set: need as many targets as inputs"):
        dataclasses.replace(task, test_targets=task.test_targets[:3])
    with pytest.raises(ConfigError, match="train and test inputs differ in shape"):
        dataclasses.replace(task, test_inputs=torch.zeros(task.test_targets.shape[0], 1, 4, 4))
    with pytest.raises(ConfigError, match=r"test targets must lie in \[0, 2\)"):
        dataclasses.replace(task, test_targets=torch.full_like(task.test_targets, 5))
    assert task.split_sizes() == {"train": 256, "validation": 128, "test": 128}
