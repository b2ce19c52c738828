"""``--controller`` values: builtin names, PPO run directories (deterministic or ``stochastic:``), distinct labels,
clear errors (another task, other slots, another observation schema, a corrupt file); and the policy a PPO run
starts from depends on its seed only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _esper_fixtures import policy_run_dir

from esper.app.commands.train_ppo import build_policy
from esper.app.controllers import (
    BUILTIN_CONTROLLERS,
    ControllerSpec,
    build_controller,
    load_policy,
    with_distinct_labels,
)
from esper.app.run_config import resolve
from esper.app.run_directory import best_checkpoint_file, checkpoint_file
from esper.app.tasks import get_task
from esper.leyline import CheckpointError, ConfigError, SlotConfig, Topology
from esper.simic.checkpoints import load_checkpoint, save_checkpoint
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import HeuristicController, RandomValidController, StaticController, register_builtin_policies

SLOTS = SlotConfig.after_blocks(3)
DIGITS = get_task("digits")


@pytest.mark.parametrize("name", BUILTIN_CONTROLLERS)
def test_builtin_names(name: str) -> None:
    spec = ControllerSpec.parse(f"  {name} ", Topology.CNN)
    assert spec == ControllerSpec(label=name, builtin=name)
    controller = build_controller(spec, DIGITS, seed=0, device="cpu")
    expected = {"heuristic": HeuristicController, "random": RandomValidController, "static": StaticController}
    assert isinstance(controller, expected[name])


@pytest.mark.parametrize("name", ["heuristic", "random"])
def test_rule_based_controllers_are_built_for_the_topology_the_task_names(name: str) -> None:
    transformer_task = get_task("pydoc-bytes")
    controller = build_controller(ControllerSpec.parse(name, Topology.CNN), transformer_task, seed=0, device="cpu")
    assert isinstance(controller, HeuristicController | RandomValidController)
    assert controller.topology is Topology.TRANSFORMER and controller.slot_config == transformer_task.slots


def test_run_directory_deterministic_and_stochastic(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "ppo-run", SLOTS)
    deterministic = ControllerSpec.parse(str(run), Topology.CNN)
    assert deterministic.run_dir == run and deterministic.deterministic and deterministic.builtin is None
    assert deterministic.label == "learned-deterministic (ppo-run)"
    stochastic = ControllerSpec.parse(f"stochastic:{run}", Topology.CNN)
    assert stochastic.run_dir == run and not stochastic.deterministic
    assert stochastic.label == "learned-stochastic (ppo-run)"

    controller = build_controller(stochastic, DIGITS, seed=3, device="cpu")
    assert isinstance(controller, PolicyController)
    assert not controller.deterministic and controller.name == stochastic.label
    policy = load_policy(run, "cpu", DIGITS, which="latest")
    expected = torch.load(checkpoint_file(run), weights_only=True)["policy_state"]["network"]
    assert all(torch.equal(policy.state_dict()["network"][k], v) for k, v in expected.items())


@pytest.mark.parametrize("text", ["heurstic", "stochastic:heuristic", "", "runs/does-not-exist"])
def test_unknown_controllers_are_clear_errors(text: str) -> None:
    expected = (
        r"unknown controller .*: expected one of heuristic, random, static, schedule:<blueprint>, .* or a PPO run"
    )
    with pytest.raises(ConfigError, match=expected):
        ControllerSpec.parse(text, Topology.CNN)


def test_a_run_directory_without_checkpoint_is_not_a_controller(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match=r"checkpoints/latest\.pt"):
        ControllerSpec.parse(str(tmp_path), Topology.CNN)


def test_a_policy_for_other_slots_is_refused(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "two-slots", SlotConfig.after_blocks(2))
    with pytest.raises(CheckpointError, match=r"trained for slots \['r0c0', 'r0c1'\], this task has"):
        build_controller(ControllerSpec.parse(f"{run}:latest", Topology.CNN), DIGITS, seed=0, device="cpu")


def test_a_policy_trained_on_another_task_is_refused(tmp_path: Path) -> None:
    """``digits-strong`` has the same slots as ``digits``: only the recorded task tells the policies apart."""
    run = policy_run_dir(tmp_path / "run", SLOTS)
    assert get_task("digits-strong").slots == DIGITS.slots
    with pytest.raises(CheckpointError, match=r"trained on task 'digits', not 'digits-strong' \(evaluate it with"):
        load_policy(run, "cpu", get_task("digits-strong"), which="latest")
    checkpoint = load_checkpoint(checkpoint_file(run))
    checkpoint.config = {}
    save_checkpoint(checkpoint_file(run), checkpoint)
    with pytest.raises(CheckpointError, match="does not record the task its policy was trained on"):
        build_controller(ControllerSpec.parse(f"{run}:latest", Topology.CNN), DIGITS, seed=0, device="cpu")


def test_a_policy_for_another_observation_schema_is_refused(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "run", SLOTS)
    checkpoint = load_checkpoint(checkpoint_file(run))
    checkpoint.policy_state = {**checkpoint.policy_state, "feature_schema_version": 0}
    save_checkpoint(checkpoint_file(run), checkpoint)
    with pytest.raises(CheckpointError, match="feature_schema_version: checkpoint has 0"):
        load_policy(run, "cpu", DIGITS, which="latest")


def test_run_directories_with_the_same_name_get_distinct_labels(tmp_path: Path) -> None:
    first = policy_run_dir(tmp_path / "a" / "run", SLOTS)
    second = policy_run_dir(tmp_path / "b" / "run", SLOTS)
    specs = with_distinct_labels(
        [
            ControllerSpec.parse(text, Topology.CNN)
            for text in ("heuristic", str(first), str(second), f"stochastic:{first}")
        ]
    )
    assert [spec.label for spec in specs] == [
        "heuristic",
        "learned-deterministic (a/run)",
        "learned-deterministic (b/run)",
        "learned-stochastic (run)",
    ]
    deeper = [policy_run_dir(tmp_path / d / "x" / "run", SLOTS) for d in ("a", "b")]
    nested = with_distinct_labels([ControllerSpec.parse(str(run), Topology.CNN) for run in deeper])
    assert [spec.label for spec in nested] == ["learned-deterministic (a/x/run)", "learned-deterministic (b/x/run)"]
    twice = with_distinct_labels(
        [ControllerSpec.parse(str(first), Topology.CNN), ControllerSpec.parse(str(first), Topology.CNN)]
    )
    assert twice[0].label == twice[1].label  # the same controller given twice stays a clash (compare refuses it)


def test_a_corrupt_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "run", SLOTS)
    path = checkpoint_file(run)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        build_controller(ControllerSpec.parse(f"{run}:latest", Topology.CNN), DIGITS, seed=0, device="cpu")


def test_initial_policy_depends_on_the_run_seed_only() -> None:
    register_builtin_policies()
    config = resolve("digits", {"policy": {"hidden_dim": 16}}, {"seed": 4})
    torch.manual_seed(123)
    first = build_policy(config)
    global_draw = torch.rand(3)
    torch.manual_seed(456)  # whatever the global generator holds
    second = build_policy(config)
    other = build_policy(resolve("digits", {"policy": {"hidden_dim": 16}}, {"seed": 5}))
    built = first.build_config()  # tamiyo's factory built it for the task's slots and topology, with its sizes
    assert (built["kind"], built["slot_config"], built["topology"]) == ("lstm", list(SLOTS.names()), "cnn")
    sizes = built["sizes"]
    assert isinstance(sizes, dict) and sizes["hidden_dim"] == 16
    a, b, c = (bundle.state_dict()["network"] for bundle in (first, second, other))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not all(torch.equal(a[name], c[name]) for name in a)
    # building a policy leaves the global generator where it was
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), global_draw)


def test_a_run_directory_means_its_best_checkpoint_and_latest_is_asked_by_name(tmp_path: Path) -> None:
    run = policy_run_dir(tmp_path / "ppo-run", SLOTS)
    best_state = load_checkpoint(best_checkpoint_file(run))
    network = best_state.policy_state["network"]
    best_state.policy_state = {**best_state.policy_state, "network": {k: v + 1.0 for k, v in network.items()}}
    save_checkpoint(best_checkpoint_file(run), best_state)
    latest_network = load_checkpoint(checkpoint_file(run)).policy_state["network"]

    specs = {text: ControllerSpec.parse(text, Topology.CNN) for text in (str(run), f"{run}:best", f"{run}:latest")}
    assert specs[str(run)] == specs[f"{run}:best"] and specs[str(run)].checkpoint == "best"
    assert specs[str(run)].label == "learned-deterministic (ppo-run)"
    assert specs[f"{run}:latest"].label == "learned-deterministic (ppo-run:latest)"
    stochastic = ControllerSpec.parse(f"stochastic:{run}:latest", Topology.CNN)
    assert stochastic.run_dir == run and stochastic.checkpoint == "latest" and not stochastic.deterministic
    for text, expected in ((str(run), {k: v + 1.0 for k, v in network.items()}), (f"{run}:latest", latest_network)):
        controller = build_controller(specs[text], DIGITS, seed=0, device="cpu")
        assert isinstance(controller, PolicyController)
        loaded = controller.bundle.state_dict()["network"]
        assert all(torch.equal(loaded[k], v) for k, v in expected.items())

    best_checkpoint_file(run).unlink()
    with pytest.raises(ConfigError, match=r"no checkpoints/best\.pt yet .*use .*ppo-run:latest"):
        ControllerSpec.parse(str(run), Topology.CNN)
    assert ControllerSpec.parse(f"{run}:latest", Topology.CNN).checkpoint == "latest"
