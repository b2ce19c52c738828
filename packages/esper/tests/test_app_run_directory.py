"""A run's directory: atomic config and results, an append-only event log that survives reopening, and refusal
to write into someone else's files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from esper.app.code_version import code_version
from esper.app.run_directory import RunDirectory, checkpoint_file, read_run_config, write_results, write_summary
from esper.leyline import ConfigError


def events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]


def test_layout_and_json_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunDirectory(run, tensorboard=False) as directory:
        directory.write_config({"task": "digits", "lr": 0.1, "bad": math.nan, "nested": {"x": [1.0, math.inf]}})
        write_results(directory.path, {"accuracy": 55.5})
        write_summary(directory.path, "# summary\n")
        assert directory.checkpoint_path == checkpoint_file(run) == run / "checkpoints" / "latest.pt"
    assert (run / "plots").is_dir() and (run / "checkpoints").is_dir()
    assert not (run / "tensorboard").exists()
    config = {"task": "digits", "lr": 0.1, "bad": None, "nested": {"x": [1.0, None]}}
    assert read_run_config(run) == {**config, "code": code_version()}
    assert json.loads((run / "results.json").read_text()) == {"accuracy": 55.5}
    assert (run / "summary.md").read_text() == "# summary\n"


def test_config_and_results_are_replaced_atomically(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunDirectory(run, tensorboard=False) as directory:
        directory.write_config({"task": "digits"})
        write_results(directory.path, {"round": 1})
        with pytest.raises(TypeError):
            directory.write_config({"task": object()})  # cannot be serialized: the old file must survive
        with pytest.raises(TypeError):
            write_results(directory.path, {"round": object()})
        write_results(directory.path, {"round": 2})
    assert read_run_config(run) == {"task": "digits", "code": code_version()}
    assert json.loads((run / "results.json").read_text()) == {"round": 2}
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_events_are_appended_and_survive_reopening(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunDirectory(run, tensorboard=False) as directory:
        directory.write_config({"task": "digits"})
        directory.event("epoch", epoch=1, accuracy=10.0)
        directory.event("epoch", epoch=2, accuracy=math.nan)
        # flushed at once: a reader (or a crash) sees every event written so far
        assert [e["epoch"] for e in events(run)] == [1, 2]
    with RunDirectory(run, resume_from=0, tensorboard=False) as directory:
        directory.event("resume", rounds_completed=2)
        directory.event("epoch", epoch=3, accuracy=12.0)
    assert events(run) == [
        {"event": "epoch", "epoch": 1, "accuracy": 10.0},
        {"event": "epoch", "epoch": 2, "accuracy": None},
        {"event": "resume", "rounds_completed": 2},
        {"event": "epoch", "epoch": 3, "accuracy": 12.0},
    ]
    assert read_run_config(run) == {"task": "digits", "code": code_version()}


def test_refuses_a_non_empty_directory_and_a_file(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists as a non-empty directory; pick another --out"):
        RunDirectory(taken, tensorboard=False)
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("data")
    with pytest.raises(ConfigError, match="already exists as a file"):
        RunDirectory(a_file, tensorboard=False)
    assert a_file.read_text() == "data"
    empty = tmp_path / "empty"
    empty.mkdir()
    RunDirectory(empty, tensorboard=False).close()  # an empty directory is fine
    assert (empty / "events.jsonl").is_file()


def test_resume_needs_an_existing_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not an Esper run directory"):
        RunDirectory(tmp_path / "absent", resume_from=0, tensorboard=False)
    assert not (tmp_path / "absent").exists()
    with pytest.raises(ConfigError, match="is not an Esper run directory"):
        read_run_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_run_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="does not hold a run config"):
        read_run_config(tmp_path)


def test_tensorboard_scalars_skip_undefined_values(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunDirectory(run) as directory:
        directory.scalars(0, {"ppo/kl": 0.01, "ppo/ev": math.nan, "ppo/early_stopped": True, "ppo/none": None})
        directory.scalars(1, {"ppo/kl": 0.02})
    files = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-untyped]

    accumulator = EventAccumulator(str(run / "tensorboard"))
    accumulator.Reload()
    assert accumulator.Tags()["scalars"] == ["ppo/kl"]
    assert [(e.step, round(e.value, 6)) for e in accumulator.Scalars("ppo/kl")] == [(0, 0.01), (1, 0.02)]
