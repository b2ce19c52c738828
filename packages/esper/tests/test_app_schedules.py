"""Fixed schedules and user controllers at the command line: ``schedule:<blueprint>``, ``schedules``,
``best-schedule:<file>`` (picked on training-range seeds only) and ``module:attribute``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _esper_fixtures import episode

from esper.app.commands.pick_schedule import episode_seeds
from esper.app.controllers import ControllerSpec, build_controller, parse_controllers
from esper.app.episode_reports import write_schedule_pick_report
from esper.app.run_config import resolve
from esper.app.schedule_choice import read_schedule_choice, write_schedule_choice
from esper.app.tasks import get_task
from esper.leyline import TOPOLOGY_BLUEPRINTS, Blueprint, ConfigError, Topology
from esper.simic.envs.episode_seeds import evaluation_episode_seeds, is_evaluation_seed, selection_episode_seeds
from esper.tamiyo import RandomValidController, ScheduleController

DIGITS = get_task("digits")
DATA = {"split": "digits", "split_seed": 0, "sizes": {"train": 1, "validation": 1, "test": 1}}


def test_a_schedule_spec_builds_the_schedule_of_its_blueprint() -> None:
    spec = ControllerSpec.parse(" schedule:bottleneck ", Topology.CNN)
    assert spec == ControllerSpec(label="schedule:bottleneck", schedule=Blueprint.BOTTLENECK)
    controller = build_controller(spec, DIGITS, seed=0, device="cpu")
    assert isinstance(controller, ScheduleController) and controller.blueprint is Blueprint.BOTTLENECK


@pytest.mark.parametrize("text", ["schedule:lora", "schedule:noop", "schedule:"])
def test_a_schedule_of_a_blueprint_the_topology_lacks_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown schedule .*: the cnn blueprints are norm, attention"):
        ControllerSpec.parse(text, Topology.CNN)


def test_schedules_expands_to_every_blueprint_of_the_topology() -> None:
    specs = parse_controllers("static, schedules ,heuristic", Topology.CNN)
    expected = [f"schedule:{b.registry_name}" for b in TOPOLOGY_BLUEPRINTS[Topology.CNN][1:]]
    assert [spec.label for spec in specs] == ["static", *expected, "heuristic"]
    assert (
        len(parse_controllers("schedules", Topology.TRANSFORMER)) == len(TOPOLOGY_BLUEPRINTS[Topology.TRANSFORMER]) - 1
    )
    with pytest.raises(ConfigError, match="stands for several controllers"):
        ControllerSpec.parse("schedules", Topology.CNN)


# --- best-schedule -------------------------------------------------------------------------------------------
def _choice(path: Path, task: str = "digits", blueprint: Blueprint = Blueprint.CONV_HEAVY) -> Path:
    write_schedule_choice(
        path, task=task, blueprint=blueprint, episode_epochs=3, episode_seeds=[1, 2], scores={"schedule:x": 1.0}
    )
    return path


def test_best_schedule_reads_the_choice_from_a_file_or_its_run_directory(tmp_path: Path) -> None:
    _choice(tmp_path / "best_schedule.json")
    for text in (str(tmp_path), str(tmp_path / "best_schedule.json")):
        spec = ControllerSpec.parse(f"best-schedule:{text}", Topology.CNN)
        assert spec.label == "best-schedule (conv_heavy)" and spec.schedule is Blueprint.CONV_HEAVY
        controller = build_controller(spec, DIGITS, seed=0, device="cpu")
        assert isinstance(controller, ScheduleController) and controller.blueprint is Blueprint.CONV_HEAVY


def test_best_schedule_of_another_task_is_refused(tmp_path: Path) -> None:
    spec = ControllerSpec.parse(f"best-schedule:{_choice(tmp_path / 'c.json', task='digits-strong')}", Topology.CNN)
    with pytest.raises(ConfigError, match=r"chosen on task 'digits-strong', not 'digits'"):
        build_controller(spec, DIGITS, seed=0, device="cpu")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no schedule choice at"),
        ("not json", "cannot read the schedule choice"),
        ('{"format": "other"}', "is not a schedule choice"),
        ('{"format": "esper-schedule-choice", "task": "digits"}', "is malformed"),
    ],
)
def test_a_bad_choice_file_is_one_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "best_schedule.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_schedule_choice(path)


def test_the_pick_report_chooses_the_best_validation_accuracy_never_test(tmp_path: Path) -> None:
    config = resolve("digits", {"run": {"epochs": 3}}, {})
    seeds = [11, 12]
    # conv_light has the better test accuracy, conv_heavy the better validation accuracy: validation decides.
    episodes = {
        "schedule:conv_light": [episode(s, 90.0, 10, val_accuracy=40.0) for s in seeds],
        "schedule:conv_heavy": [episode(s, 20.0, 500, val_accuracy=50.0) for s in seeds],
        "schedule:norm": [episode(s, 20.0, 5, val_accuracy=50.0) for s in seeds],  # a tie, cheaper: chosen
    }
    labels = list(episodes)
    table, best = write_schedule_pick_report(tmp_path, config, DATA, labels, seeds, episodes)
    assert best == "schedule:norm"
    choice = read_schedule_choice(tmp_path)
    assert choice.blueprint is Blueprint.NORM and choice.task == "digits" and choice.episode_seeds == (11, 12)
    assert choice.scores == {"schedule:conv_light": 40.0, "schedule:conv_heavy": 50.0, "schedule:norm": 50.0}
    assert "90.00" not in table and "90.00" not in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["best"] == "schedule:norm"


def test_pick_schedule_seeds_are_training_range_and_evaluation_seeds_are_refused() -> None:
    derived = episode_seeds(None, 3, 5)
    assert derived == selection_episode_seeds(3, 5) and not any(map(is_evaluation_seed, derived))
    assert set(derived).isdisjoint(evaluation_episode_seeds(3, 5))
    assert episode_seeds("4, 5,6", 0, 8) == [4, 5, 6]
    held_out = evaluation_episode_seeds(0, 1)[0]
    with pytest.raises(ConfigError, match=rf"--episode-seeds \[{held_out}\] are evaluation seeds"):
        episode_seeds(f"1,{held_out}", 0, 8)
    for bad in ("1,x", "1,1", "", "-3"):
        with pytest.raises(ConfigError, match="--episode-seeds needs"):
            episode_seeds(bad, 0, 8)


# --- module:attribute --------------------------------------------------------------------------------------------
@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[str]:
    """An importable module with a good factory and a few bad attributes."""
    (tmp_path / "my_controllers.py").write_text(
        "from esper.tamiyo import StaticController\n"
        "def good(slot_config, topology, *, seed):\n    return StaticController()\n"
        "def no_seed(slot_config, topology):\n    return StaticController()\n"
        "def not_a_controller(slot_config, topology, *, seed):\n    return 42\n"
        "NOT_CALLABLE = 3\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield "my_controllers"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("my_controllers", None)


def test_a_controller_by_import_path_is_built_with_slots_topology_and_seed(user_module: str) -> None:
    spec = ControllerSpec.parse("esper.tamiyo:RandomValidController", Topology.CNN)
    assert spec == ControllerSpec(label="esper.tamiyo:RandomValidController", import_path=spec.import_path)
    first = build_controller(spec, DIGITS, seed=5, device="cpu")
    assert isinstance(first, RandomValidController) and first.slot_config == DIGITS.slots
    good = build_controller(ControllerSpec.parse(f"{user_module}:good", Topology.CNN), DIGITS, seed=0, device="cpu")
    assert good.name == "static"


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("no_such_module_xyz:thing", r"cannot import module 'no_such_module_xyz'"),
        ("{m}:missing", r"'my_controllers' has no attribute 'missing'"),
        ("{m}:NOT_CALLABLE", "is not callable"),
        ("{m}:no_seed", r"cannot be called as \(slot_config, topology, seed=\.\.\.\)"),
        ("{m}:not_a_controller", "built a int, which does not satisfy leyline's Controller protocol"),
    ],
)
def test_a_bad_import_path_is_one_clear_error(user_module: str, attribute: str, message: str) -> None:
    spec = ControllerSpec.parse(attribute.format(m=user_module), Topology.CNN)
    with pytest.raises(ConfigError, match=message):
        build_controller(spec, DIGITS, seed=0, device="cpu")
