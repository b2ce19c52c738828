"""End-to-end runs of the ``esper`` command line in subprocesses, with tiny settings, checking what they write.

Every command runs as a user would run it (``python -m esper.app.cli`` or the ``esper`` console script) and the
tests read the files it leaves: config, event log, results, summary, plots, TensorBoard scalars, checkpoints.
Bad input must end with one clear line on stderr, exit status 2, and nothing written or changed on disk.

Harness choices: each CLI process gets one torch thread (as the test processes do, see the root conftest: the
suite runs two workers on two cores), and the compiled bytecode of the many short CLI processes is cached in the
session's temporary directory (``PYTHONPYCACHEPREFIX``; never in the source tree), so a process does not
recompile torch on start. The two runs several tests read (a heuristic run and a 2-round PPO run) are made once
per session and shared by the pytest workers; a test that changes a run works on its own copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch

from esper.app.cli import main
from esper.app.controllers import load_policy
from esper.app.evaluation import interval_text
from esper.app.tasks import BYTES_VALIDATION_WINDOWS, TASKS
from esper.leyline import HEAD_ORDER, CheckpointError, SlotConfig
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint, restore_rng_states, save_checkpoint
from esper.simic.envs.episode_seeds import (
    evaluation_episode_seeds,
    is_evaluation_seed,
    selection_episode_seeds,
    training_episode_seeds,
)
from esper.simic.ppo.updater import PPOConfig, PPOUpdater
from esper.tamiyo import DecisionReason, create_policy, register_builtin_policies

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

QUICK = ["--envs", "2", "--seed", "0", "--quiet"]
DIGITS_DATA = {
    "split": "scikit-learn digits, stratified 70/15/15 % train/validation/test",
    "split_seed": 0,
    "examples": "images",
    "sizes": {"train": 1259, "validation": 269, "test": 269},
    "metric": "accuracy",
}
HEURISTIC = ["train", "heuristic", "--epochs", "3", "--episodes", "2", *QUICK]
PPO = ["train", "ppo", "--epochs", "3", "--rounds", "2", "--backend", "inprocess", *QUICK]
#: evaluate and compare take the episode length from a config file
TINY_TOML = "[run]\nepochs = 3\n"
PNG = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------- harness
def _shared_root(factory: pytest.TempPathFactory) -> Path:
    """A directory every pytest worker of this session sees (the per-worker base's parent under xdist)."""
    base = factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "esper-e2e"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _shared_root(tmp_path_factory)


@pytest.fixture(scope="session")
def cli_env(shared_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(OMP_NUM_THREADS="1", PYTHONPYCACHEPREFIX=str(shared_root / "pycache"))
    with _exclusive(shared_root / "pycache.lock"):  # one worker compiles, the other waits and reuses
        if not (shared_root / "pycache").is_dir():
            subprocess.run([sys.executable, "-c", "import esper.app.cli"], env=env, check=True, timeout=600)
    return env


def run_cli(env: dict[str, str], cwd: Path, *args: str, script: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "esper")] if script else [sys.executable, "-m", "esper.app.cli"]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert "Traceback" not in result.stderr
    return result


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_run(root: Path, env: dict[str, str], name: str, args: list[str]) -> Path:
    """Run the CLI once per session into ``root/name`` (whichever worker comes first); everyone reads it."""
    out = root / name
    status = root / f"{name}.status.json"
    with _exclusive(root / f"{name}.lock"):
        if not status.exists():
            result = run_cli(env, root, *args, "--out", str(out))
            status.write_text(json.dumps({"code": result.returncode, "out": result.stdout, "err": result.stderr}))
    outcome = json.loads(status.read_text())
    assert outcome["code"] == 0, outcome["err"][-5000:]
    return out


@pytest.fixture(scope="session")
def heuristic_run(shared_root: Path, cli_env: dict[str, str]) -> Path:
    return shared_run(shared_root, cli_env, "heuristic", [*HEURISTIC, "--backend", "inprocess"])


@pytest.fixture(scope="session")
def ppo_run(shared_root: Path, cli_env: dict[str, str]) -> Path:
    return shared_run(shared_root, cli_env, "ppo", PPO)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def copy_run(run: Path, destination: Path) -> Path:
    return Path(shutil.copytree(run, destination))


def events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def of_kind(run: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in events(run) if e["event"] == kind]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000


def watch_frame(run: Path) -> str:
    """``esper watch RUN --once``, in this process: the one frame it draws, 160 columns wide (rich takes the
    width of an output that is not a terminal from ``COLUMNS``), so no decision line is cut short."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output), mock.patch.dict(os.environ, {"COLUMNS": "160"}):
        assert main(["watch", str(run), "--once"]) == 0
    return output.getvalue()


def check_blueprints(outcomes: dict[str, dict[str, Any]], episodes: list[dict[str, Any]], summary: str) -> None:
    """The blueprint outcomes add up to the episodes' own counts, and the summary has their table."""
    for count in ("germinated", "fossilized", "pruned", "params_added"):
        assert sum(o[count] for o in outcomes.values()) == sum(e[count] for e in episodes), count
    assert "Blueprints" in summary
    for name in outcomes:
        assert f"| {name} |" in summary


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """Cells of the Markdown table whose header line starts with ``header_start``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


# --------------------------------------------------------------------------------------------- help, tasks
COMMANDS = [
    [],
    ["tasks"],
    ["train"],
    ["train", "heuristic"],
    ["train", "ppo"],
    ["evaluate"],
    ["compare"],
    ["pick-schedule"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "esper")
def test_help_works_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: esper" + "".join(" " + part for part in command))
    expected = {
        "train ppo": ["--resume", "--rounds", "--compile-mode", "--config"],
        "train heuristic": ["--episodes", "--epochs", "--backend"],
        "evaluate": ["--controller", "--episodes", "stochastic:"],
        "compare": ["--controllers", "--baseline", "schedules", "best-schedule:FILE", "module:attribute"],
        "pick-schedule": ["--episodes", "--episode-seeds", "training-range"],
        "": ["tasks", "train", "evaluate", "compare", "pick-schedule"],
    }.get(" ".join(command), [])
    for text in expected:
        assert text in out


def test_console_script_lists_every_task(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = succeeded(run_cli(cli_env, tmp_path, "tasks", script=True)).stdout
    rows = table_rows(out, "| task |")
    assert [row[0].removesuffix(" (default)") for row in rows] == list(TASKS)
    assert rows[0][0] == "digits (default)"
    for row, preset in zip(rows, TASKS.values(), strict=True):
        assert row[3] == str(preset.episode_epochs)
        assert f"{preset.name}: {preset.description}" in out
    assert list(tmp_path.iterdir()) == []  # listing tasks writes nothing


# ------------------------------------------------------------------------------------------ train heuristic
def test_train_heuristic_writes_config_events_results_summary_and_plot(heuristic_run: Path) -> None:
    config = read_json(heuristic_run / "config.json")
    seeds = training_episode_seeds(0, 0, 2)
    assert config["task"] == "digits" and config["controller"] == "heuristic"
    assert config["episode_seeds"] == seeds
    assert config["run"]["seed"] == 0 and config["run"]["episodes"] == 2 and config["run"]["epochs"] == 3
    assert config["env"]["max_epochs"] == 3 and config["ppo"]["clip_ratio"] == 0.2  # fully resolved
    assert config["data"] == DIGITS_DATA

    epochs = of_kind(heuristic_run, "epoch")
    assert len(epochs) == 2 * 3
    assert sorted((e["episode"], e["epoch"]) for e in epochs) == [(ep, t) for ep in (0, 1) for t in (1, 2, 3)]
    assert all(e["controller"] == "heuristic" and 0.0 <= e["val_accuracy"] <= 100.0 for e in epochs)
    episodes = of_kind(heuristic_run, "episode")
    assert [e["seed"] for e in episodes] == seeds and [e["epochs_run"] for e in episodes] == [3, 3]
    for episode in episodes:  # the episode's curve is the one its epoch events reported
        reported = [e["val_accuracy"] for e in epochs if e["episode"] == episodes.index(episode)]
        assert episode["val_accuracy_curve"][1:] == reported
        assert episode["final_val_accuracy"] == reported[-1]
        assert 0.0 <= episode["test_accuracy"] <= 100.0

    decisions = of_kind(heuristic_run, "decision")  # recorded by default in episode runs
    assert sorted((d["episode"], d["epoch"]) for d in decisions) == [(ep, t) for ep in (0, 1) for t in (0, 1, 2)]
    for decision in decisions:
        step = next(e for e in epochs if (e["episode"], e["epoch"]) == (decision["episode"], decision["epoch"] + 1))
        assert (decision["op"], decision["slot"]) == (step["op"], step["slot"])  # the action the step executed
        assert decision["rule"] in {r.value for r in DecisionReason}
        assert {"plateau_epochs", "stabilized", "embargo_remaining"} <= decision["signals"].keys()

    results = read_json(heuristic_run / "results.json")
    assert results["seeds"] == seeds and [r["seed"] for r in results["episodes"]] == seeds
    assert results["data"] == DIGITS_DATA
    assert results["stats"]["episodes"] == 2
    # the reported result is the test accuracy; the final validation accuracy stands beside it, named as such
    assert [r["test_accuracy"] for r in results["episodes"]] == [e["test_accuracy"] for e in episodes]
    assert [r["val_accuracy"] for r in results["episodes"]] == [e["final_val_accuracy"] for e in episodes]
    test = [e["test_accuracy"] for e in episodes]
    assert results["stats"]["test_accuracy"]["mean"] == pytest.approx(sum(test) / 2)
    assert results["stats"]["val_accuracy"]["mean"] == pytest.approx(sum(e["final_val_accuracy"] for e in episodes) / 2)
    assert "final_accuracy" not in results["stats"]
    summary = (heuristic_run / "summary.md").read_text()
    check_blueprints(results["blueprints"], episodes, summary)
    assert summary.startswith("# Heuristic on `digits`")
    assert "1,259 / 269 / 269 images, split seed 0" in summary and "**Test accuracy** is measured once" in summary
    assert [row[:3] for row in table_rows(summary, "| controller | test acc % [95% CI] | val acc % [95% CI] |")] == [
        [
            "heuristic",
            interval_text(results["stats"]["test_accuracy"]),
            interval_text(results["stats"]["val_accuracy"]),
        ]
    ]
    seed_rows = table_rows(summary, "| seed | test acc % | val acc % |")
    assert [int(row[0]) for row in seed_rows] == seeds
    assert [(float(row[1]), float(row[2])) for row in seed_rows] == [
        (round(e["test_accuracy"], 2), round(e["final_val_accuracy"], 2)) for e in episodes
    ]
    assert "![lifecycle](plots/lifecycle.png)" in summary
    assert is_png(heuristic_run / "plots" / "lifecycle.png")
    assert not (heuristic_run / "tensorboard").exists()


def _same_values(a: object, b: object) -> bool:
    """Nested checkpoint values equal to the bit (tensors compared element by element, dtypes included)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_values(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_values(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_the_same_command_writes_the_same_checkpoint(ppo_run: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    """Policy, optimizer, normalizers and the recorded global RNG states: a run seeds the global generators
    from its seed, so nothing in the checkpoint depends on the process it ran in (only the run id differs)."""
    again = tmp_path / "again"
    succeeded(run_cli(cli_env, tmp_path, *PPO, "--out", str(again)))
    first = load_checkpoint(ppo_run / "checkpoints" / "latest.pt")
    second = load_checkpoint(again / "checkpoints" / "latest.pt")
    assert first.rounds_completed == second.rounds_completed == 2
    for field in ("policy_state", "policy_build_config", "updater_state", "rng"):
        assert _same_values(getattr(first, field), getattr(second, field)), field
    assert first.config["run_id"] != second.config["run_id"]


def test_recording_decisions_changes_nothing_the_controller_does(
    heuristic_run: Path, ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The same seeds with and without decision records: the same episodes (heuristic, records on by default)
    and the same training (PPO, records off by default), only the decision events differ."""
    quiet, loud = tmp_path / "heuristic", tmp_path / "ppo"
    succeeded(
        run_cli(cli_env, tmp_path, *HEURISTIC, "--backend", "inprocess", "--no-record-decisions", "--out", str(quiet))
    )
    succeeded(run_cli(cli_env, tmp_path, *PPO, "--record-decisions", "--out", str(loud)))
    assert of_kind(quiet, "decision") == [] and of_kind(heuristic_run, "decision") != []
    for kind in ("epoch", "host", "episode"):
        assert of_kind(quiet, kind) == of_kind(heuristic_run, kind), kind
    assert read_json(quiet / "results.json")["episodes"] == read_json(heuristic_run / "results.json")["episodes"]

    assert of_kind(ppo_run, "decision") == [] and len(of_kind(loud, "decision")) == 2 * 2 * 3
    for kind in ("epoch", "host", "episode", "validation"):
        assert [_untimed(e) for e in of_kind(loud, kind)] == [_untimed(e) for e in of_kind(ppo_run, kind)], kind
    assert [r["update"] for r in of_kind(loud, "round")] == [r["update"] for r in of_kind(ppo_run, "round")]
    first = load_checkpoint(ppo_run / "checkpoints" / "latest.pt")
    second = load_checkpoint(loud / "checkpoints" / "latest.pt")
    assert _same_values(first.policy_state, second.policy_state)
    decision = of_kind(loud, "decision")[0]
    assert {"op_probabilities", "heads", "value"} <= decision.keys() and decision["round"] == 0
    assert "V=" in watch_frame(loud)


def _untimed(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "seconds"}


def test_watch_draws_a_heuristic_run(heuristic_run: Path) -> None:
    frame = watch_frame(heuristic_run)
    assert "train heuristic on digits" in frame and "2 of 2 episodes done" in frame and "finished" in frame
    assert "heuristic test acc %" in frame and "slot lifecycles" in frame and "episode 1" in frame


def test_watch_draws_a_ppo_run(ppo_run: Path) -> None:
    frame = watch_frame(ppo_run)
    assert "train ppo on digits" in frame and "round 2 of 2 done" in frame and "finished" in frame
    assert "test acc % (round mean)" in frame and "argmax validation %" in frame
    assert "slot lifecycles" in frame and "(round 1)" in frame and "env 1" in frame
    assert "heads (round 1)" in frame and "blueprint" in frame


def test_a_warm_start_clones_its_demonstrator_once_and_the_same_command_gives_the_same_policy(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "warm.toml"
    config.write_text('[warm_start]\ndemonstrator = "schedule:conv_light"\nepisodes = 2\nmax_epochs = 3\n')
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        succeeded(run_cli(cli_env, tmp_path, *PPO, "--rounds", "1", "--config", str(config), "--out", str(run)))
    (record,) = of_kind(runs[0], "warm_start")
    assert record["demonstrator"] == "schedule:conv_light" and record["episodes"] == 2
    assert record["epochs"] <= 3 and record["final_action_probability"] > record["initial_action_probability"]
    assert read_json(runs[0] / "config.json")["warm_start"]["demonstrator"] == "schedule:conv_light"
    first, second = (load_checkpoint(run / "checkpoints" / "latest.pt") for run in runs)
    for field in ("policy_state", "updater_state"):
        assert _same_values(getattr(first, field), getattr(second, field)), field
    # Cloning moved the policy: a run without the warm start ends elsewhere after the same round.
    plain = tmp_path / "plain"
    succeeded(run_cli(cli_env, tmp_path, *PPO, "--rounds", "1", "--out", str(plain)))
    assert not _same_values(first.policy_state, load_checkpoint(plain / "checkpoints" / "latest.pt").policy_state)
    # A resumed run continues from its checkpoint: it does not clone again.
    succeeded(run_cli(cli_env, tmp_path, "train", "ppo", "--resume", str(runs[0]), "--rounds", "2", "--quiet"))
    assert len(of_kind(runs[0], "warm_start")) == 1 and len(of_kind(runs[0], "round")) == 2


def test_the_mlp_policy_kind_trains_and_evaluates_with_the_same_commands(
    cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    config = tmp_path / "mlp.toml"
    config.write_text('[policy]\nkind = "mlp"\nhidden_dim = 32\n')
    run = tmp_path / "mlp"
    succeeded(run_cli(cli_env, tmp_path, *PPO, "--rounds", "1", "--config", str(config), "--out", str(run)))
    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert checkpoint.policy_build_config["kind"] == "mlp" and checkpoint.config["policy"]["kind"] == "mlp"
    assert checkpoint.policy_build_config["sizes"]["hidden_dim"] == 32
    evaluated = tmp_path / "eval"
    args = ["evaluate", "--controller", str(run), "--episodes", "1", "--envs", "1", "--quiet"]
    succeeded(
        run_cli(
            cli_env, tmp_path, *args, "--config", str(tiny_config), "--backend", "inprocess", "--out", str(evaluated)
        )
    )
    assert len(read_json(evaluated / "results.json")["episodes"]) == 1


def test_process_backend_gives_the_same_episodes(heuristic_run: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "processes"
    succeeded(run_cli(cli_env, tmp_path, *HEURISTIC, "--backend", "processes", "--workers", "2", "--out", str(out)))
    assert read_json(out / "config.json")["run"]["backend"] == "processes"
    assert read_json(out / "results.json")["episodes"] == read_json(heuristic_run / "results.json")["episodes"]
    assert of_kind(out, "epoch") == of_kind(heuristic_run, "epoch")


# ------------------------------------------------------------------------------------------------ train ppo
def test_train_ppo_writes_rounds_tensorboard_and_checkpoint(ppo_run: Path) -> None:
    config = read_json(ppo_run / "config.json")
    assert config["controller"] == "ppo" and config["run"]["rounds"] == 2 and config["run"]["seed"] == 0
    assert config["policy"] == {"kind": "lstm"} and config["env"]["max_epochs"] == 3

    rounds = of_kind(ppo_run, "round")
    assert [r["round"] for r in rounds] == [0, 1]
    episodes = of_kind(ppo_run, "episode")
    check_blueprints(read_json(ppo_run / "results.json")["blueprints"], episodes, (ppo_run / "summary.md").read_text())
    for record in rounds:
        own = [e for e in episodes if e["round"] == record["round"]]
        assert record["mean_test_accuracy"] == pytest.approx(sum(e["test_accuracy"] for e in own) / 2)
        assert record["mean_val_accuracy"] == pytest.approx(sum(e["final_val_accuracy"] for e in own) / 2)
        update = record["update"]
        assert update["transitions"] == 2 * 3 and update["epochs_completed"] >= 1
        assert update["first_ratio_deviation"] < 1e-4
        assert "explained_variance" in update and update["clip_fraction"] >= 0.0
        for head in HEAD_ORDER:
            assert {f"heads.{head.value}.{k}" for k in ("entropy", "approx_kl", "clip_fraction")} <= update.keys()
        assert 0.0 <= update["heads.op.entropy"] <= 1.0 and update["heads.op.relevant_fraction"] == 1.0
    assert len(of_kind(ppo_run, "epoch")) == 2 * 2 * 3
    assert [(e["round"], e["seed"]) for e in episodes] == [
        (r, seed) for r in (0, 1) for seed in training_episode_seeds(0, r, 2)
    ]

    checkpoint = load_checkpoint(ppo_run / "checkpoints" / "latest.pt")
    assert checkpoint.rounds_completed == 2
    assert checkpoint.config == {k: v for k, v in config.items() if k not in ("controller", "data", "code")}
    assert checkpoint.policy_build_config["slot_config"] == ["r0c0", "r0c1", "r0c2"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-untyped]

    accumulator = EventAccumulator(str(ppo_run / "tensorboard"))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert {"episode/test_accuracy", "episode/val_accuracy", "ppo/explained_variance"} <= set(tags)
    assert [event.step for event in accumulator.Scalars("episode/test_accuracy")] == [0, 1]

    results = read_json(ppo_run / "results.json")
    assert [r["round"] for r in results["rounds"]] == [0, 1]
    assert [e["seed"] for e in results["last_round_episodes"]] == training_episode_seeds(0, 1, 2)
    assert results["data"] == DIGITS_DATA and read_json(ppo_run / "config.json")["data"] == DIGITS_DATA
    summary = (ppo_run / "summary.md").read_text()
    assert "2 rounds x 2 envs x 3 epochs, run seed 0" in summary
    round_rows = table_rows(summary, "| round | mean test acc % | mean val acc % |")
    assert [row[0] for row in round_rows] == ["0", "1"]
    assert [float(row[1]) for row in round_rows] == [round(r["mean_test_accuracy"], 2) for r in rounds]
    assert [row[0] for row in table_rows(summary, "| head |")] == [h.value for h in HEAD_ORDER]
    assert is_png(ppo_run / "plots" / "learning_curves.png") and is_png(ppo_run / "plots" / "lifecycle.png")


def test_validation_keeps_the_best_policy_and_changes_nothing_the_training_computes(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    # The shared run validates once, after its last round (every 5 rounds by default): best.pt is that policy.
    (only,) = of_kind(ppo_run, "validation")
    assert only["round"] == 1 and only["new_best"] and only["best_val_accuracy"] == only["mean_val_accuracy"]
    assert len(only["val_accuracies"]) == 8
    best = load_checkpoint(ppo_run / "checkpoints" / "best.pt")
    assert best.config["validation"] == {"round": 1, "mean_val_accuracy": only["mean_val_accuracy"]}
    latest = load_checkpoint(ppo_run / "checkpoints" / "latest.pt")
    assert all(torch.equal(best.policy_state["network"][k], v) for k, v in latest.policy_state["network"].items())

    # Validating after every round: the same rounds, the same final policy; the best score never falls.
    config = tmp_path / "validate.toml"
    config.write_text("[run]\nvalidate_every = 1\nvalidation_episodes = 3\n")
    out = tmp_path / "run"
    succeeded(run_cli(cli_env, tmp_path, *PPO, "--config", str(config), "--out", str(out)))

    def rounds(run: Path) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in of_kind(run, "round")]

    assert rounds(out) == rounds(ppo_run)
    final = load_checkpoint(out / "checkpoints" / "latest.pt").policy_state["network"]
    assert all(torch.equal(final[k], v) for k, v in latest.policy_state["network"].items())
    validations = of_kind(out, "validation")
    assert [v["round"] for v in validations] == [0, 1]
    assert {len(v["val_accuracies"]) for v in validations} == {3}
    best_scores = [v["best_val_accuracy"] for v in validations]
    assert best_scores == [max(v["mean_val_accuracy"] for v in validations[: i + 1]) for i in range(2)]
    winner = max(validations, key=lambda v: v["mean_val_accuracy"])  # the first on a tie
    assert load_checkpoint(out / "checkpoints" / "best.pt").config["validation"]["round"] == winner["round"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(out / "tensorboard"))
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("validation/val_accuracy")] == [0, 1]
    summary = (out / "summary.md").read_text()
    rows = table_rows(summary, "| round | argmax val acc % |")
    assert [float(row[1]) for row in rows] == [round(v["mean_val_accuracy"], 2) for v in validations]
    assert [row[0].endswith("(best)") for row in rows] == [v["new_best"] for v in validations]
    assert read_json(out / "results.json")["validations"] == validations

    # best (the default) and latest are both controllers; latest is labelled as such.
    evaluated = tmp_path / "eval"
    args = ["evaluate", "--controller", f"{out}:latest", "--episodes", "1", "--envs", "1", "--quiet"]
    rest = ["--config", str(tiny_config), "--backend", "inprocess", "--out", str(evaluated)]
    succeeded(run_cli(cli_env, tmp_path, *args, *rest))
    assert read_json(evaluated / "results.json")["controller"] == "learned-deterministic (run:latest)"


def test_resume_continues_the_round_counter_and_keeps_earlier_events(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    before = (run / "events.jsonl").read_text()
    succeeded(run_cli(cli_env, tmp_path, "train", "ppo", "--resume", str(run), "--rounds", "3", "--quiet"))

    after = (run / "events.jsonl").read_text()
    assert after.startswith(before)  # nothing earlier lost or rewritten
    new = [json.loads(line) for line in after[len(before) :].splitlines()]
    assert new[0] == {"event": "resume", "rounds_completed": 2, "rounds": 3}
    assert [r["round"] for r in of_kind(run, "round")] == [0, 1, 2]
    assert len([e for e in new if e["event"] == "epoch"]) == 2 * 3
    assert all(e["round"] == 2 for e in new if e["event"] in ("epoch", "episode"))
    assert [e["seed"] for e in new if e["event"] == "episode"] == training_episode_seeds(0, 2, 2)
    assert load_checkpoint(run / "checkpoints" / "latest.pt").rounds_completed == 3
    assert read_json(run / "config.json")["run"]["rounds"] == 3
    assert [r["round"] for r in read_json(run / "results.json")["rounds"]] == [0, 1, 2]
    summary = (run / "summary.md").read_text()
    assert "3 rounds x 2 envs x 3 epochs" in summary
    assert [row[0] for row in table_rows(summary, "| round |")] == ["0", "1", "2"]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one file per session


# ----------------------------------------------------------------------------------- evaluate and compare
def test_evaluate_static_on_held_out_seeds(cli_env: dict[str, str], tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--controller", "static", "--task", "digits", "--episodes", "3", "--config", str(tiny_config)]
    result = succeeded(
        run_cli(cli_env, tmp_path, *args, "--envs", "2", "--backend", "inprocess", "--quiet", "--out", str(out))
    )
    seeds = evaluation_episode_seeds(0, 3)
    results = read_json(out / "results.json")
    assert results["controller"] == "static" and results["seeds"] == seeds
    assert all(is_evaluation_seed(seed) for seed in seeds)
    assert [(r["seed"], r["params_added"], r["germinated"]) for r in results["episodes"]] == [(s, 0, 0) for s in seeds]
    assert results["stats"]["episodes"] == 3
    assert len(of_kind(out, "epoch")) == 3 * 3 and len(of_kind(out, "episode")) == 3
    assert {e["op"] for e in of_kind(out, "epoch")} == {"WAIT"}
    assert read_json(out / "config.json")["episode_seeds"] == seeds
    summary = (out / "summary.md").read_text()
    assert [int(row[0]) for row in table_rows(summary, "| seed |")] == seeds
    assert is_png(out / "plots" / "lifecycle.png")
    assert "| static |" in result.stdout
    check_blueprints(results["blueprints"], of_kind(out, "episode"), summary)
    frame = watch_frame(out)
    assert "evaluate on digits" in frame and "3 of 3 episodes done" in frame and "finished" in frame
    assert "static test acc %" in frame and "slot lifecycles" in frame


@pytest.mark.parametrize("mode", ["deterministic", "stochastic"])
def test_evaluate_a_ppo_run_directory(
    mode: str, ppo_run: Path, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    out = tmp_path / "eval"
    controller = str(ppo_run) if mode == "deterministic" else f"stochastic:{ppo_run}"
    args = ["evaluate", "--controller", controller, "--episodes", "2", "--config", str(tiny_config)]
    succeeded(run_cli(cli_env, tmp_path, *args, "--envs", "2", "--backend", "inprocess", "--quiet", "--out", str(out)))
    results = read_json(out / "results.json")
    assert results["controller"] == f"learned-{mode} (ppo)"
    evaluation_seeds = results["seeds"]
    training_seeds = {e["seed"] for e in of_kind(ppo_run, "episode")}
    assert evaluation_seeds == evaluation_episode_seeds(0, 2)
    assert training_seeds.isdisjoint(evaluation_seeds)
    assert all(is_evaluation_seed(s) for s in evaluation_seeds) and not any(map(is_evaluation_seed, training_seeds))
    assert [e["epochs_run"] for e in of_kind(out, "episode")] == [3, 3]
    assert len(of_kind(out, "epoch")) == 2 * 3
    decisions = of_kind(out, "decision")  # a learned controller says how sure it was
    assert len(decisions) == 2 * 3
    for decision in decisions:
        probabilities = decision["op_probabilities"]
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert decision["heads"]["op"]["choice"] == decision["op"]
        assert decision["heads"]["op"]["probability"] == pytest.approx(probabilities[decision["op"]], rel=1e-4)
        assert all(0.0 <= head["entropy"] <= 1.0 + 1e-6 for head in decision["heads"].values())
    frame = watch_frame(out)
    assert "latest decisions" in frame and "V=" in frame and f"heads (learned-{mode} (ppo) decisions)" in frame
    assert results["stats"]["controller"] == f"learned-{mode} (ppo)"


def test_pick_schedule_on_training_seeds_then_compare_against_the_choice(
    cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    pick = tmp_path / "pick"
    args = ["pick-schedule", "--episodes", "1", "--config", str(tiny_config), "--envs", "1"]
    result = succeeded(run_cli(cli_env, tmp_path, *args, "--backend", "inprocess", "--quiet", "--out", str(pick)))
    config = read_json(pick / "config.json")
    assert config["command"] == "pick-schedule" and config["episode_seeds"] == selection_episode_seeds(0, 1)
    assert not any(map(is_evaluation_seed, config["episode_seeds"]))
    assert {e["seed"] for e in of_kind(pick, "episode")} == set(config["episode_seeds"])
    choice = read_json(pick / "best_schedule.json")
    assert set(choice["scores"]) == set(config["controllers"]) and len(choice["scores"]) == 7
    assert f"best-schedule:{pick}" in result.stdout
    summary = (pick / "summary.md").read_text()
    (pick / "summary.md").unlink()
    assert main(["report", str(pick)]) == 0 and (pick / "summary.md").read_text() == summary

    out = tmp_path / "compare"
    controllers = f"static,best-schedule:{pick}"
    args = ["compare", "--controllers", controllers, "--baseline", f"best-schedule:{pick}", "--episodes", "1"]
    rest = ["--config", str(tiny_config), "--envs", "1", "--backend", "inprocess", "--quiet", "--out", str(out)]
    succeeded(run_cli(cli_env, tmp_path, *args, *rest))
    results = read_json(out / "results.json")
    label = f"best-schedule ({choice['blueprint']})"
    assert results["baseline"] == label and set(results["paired_vs_baseline"]) == {"static"}
    assert {e["controller"] for e in of_kind(out, "episode")} == {"static", f"schedule:{choice['blueprint']}"}

    held_out = str(evaluation_episode_seeds(0, 1)[0])
    refused = run_cli(cli_env, tmp_path, "pick-schedule", "--episode-seeds", held_out, "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "are evaluation seeds" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_compare_writes_tables_with_intervals_and_paired_differences(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    out = tmp_path / "compare"
    controllers = f"heuristic,static,{ppo_run}"
    args = ["compare", "--controllers", controllers, "--episodes", "2", "--config", str(tiny_config)]
    result = succeeded(
        run_cli(cli_env, tmp_path, *args, "--envs", "2", "--backend", "inprocess", "--quiet", "--out", str(out))
    )
    learned = "learned-deterministic (ppo)"
    labels = ["heuristic", "static", learned]
    results = read_json(out / "results.json")
    seeds = evaluation_episode_seeds(0, 2)
    assert results["seeds"] == seeds and results["baseline"] == "heuristic"
    assert [s["controller"] for s in results["controllers"]] == labels
    for stats in results["controllers"]:
        rows = results["episodes"][stats["controller"]]
        assert [r["seed"] for r in rows] == seeds  # every controller faced the same episodes
        accuracy = stats["test_accuracy"]
        assert accuracy["n"] == 2 and accuracy["low"] <= accuracy["mean"] <= accuracy["high"]
        assert accuracy["mean"] == pytest.approx(sum(r["test_accuracy"] for r in rows) / 2)
        assert stats["val_accuracy"]["mean"] == pytest.approx(sum(r["val_accuracy"] for r in rows) / 2)
        assert "gain_over_static" in stats
    assert set(results["paired_vs_baseline"]) == {"static", learned}
    heuristic_rows, static_rows = results["episodes"]["heuristic"], results["episodes"]["static"]
    paired = results["paired_vs_baseline"]["static"]["test_accuracy"]
    expected = sum(s["test_accuracy"] - h["test_accuracy"] for s, h in zip(static_rows, heuristic_rows, strict=True))
    assert paired["mean"] == pytest.approx(expected / 2) and paired["low"] <= paired["mean"] <= paired["high"]

    summary = (out / "summary.md").read_text()
    assert [row[0] for row in table_rows(summary, "| controller | test acc % [95% CI] | val acc %")] == labels
    paired_header = "| controller | test acc minus heuristic (pp) [95% CI] | val acc minus heuristic (pp) [95% CI] |"
    assert [row[0] for row in table_rows(summary, paired_header)] == ["static", learned]
    assert re.search(r"\| static \| [-\d.]+ \[[-\d.]+, [-\d.]+\] \|", summary)
    assert "| heuristic |" in result.stdout
    assert is_png(out / "plots" / "comparison.png")
    for slug in ("heuristic", "static", "learned-deterministic--ppo"):
        assert is_png(out / "plots" / f"lifecycle-{slug}.png")
    assert len(of_kind(out, "episode")) == 3 * 2 and len(of_kind(out, "epoch")) == 3 * 2 * 3
    names = read_json(out / "config.json")["controller_names"]
    for label, name in zip(labels, names, strict=True):
        own = [e for e in of_kind(out, "episode") if e["controller"] == name]
        check_blueprints(results["blueprints"][label], own, summary)
    frame = watch_frame(out)
    assert "compare on digits" in frame and "6 of 6 episodes done" in frame and "finished" in frame
    for name in ("heuristic", "static", learned):
        assert f"{name} test acc %" in frame
    assert "by rule always_wait" in frame or "V=" in frame  # the last controller's latest decisions
    assert {d["controller"] for d in of_kind(out, "decision")} == set(names)


# ------------------------------------------------------------------------------------------------- bad input
# A refusal happens before any training, so most refusal cases call ``main`` in the test process (the same code
# path minus interpreter start-up); one case of each kind also runs as a real process, for the exit status.


@pytest.fixture
def run_refused(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(cwd: Path, *args: str, separate_process: bool) -> subprocess.CompletedProcess[str]:
        if separate_process:
            return run_cli(cli_env, cwd, *args, script=True)
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["esper", *args], code, captured.out, captured.err)

    return run


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit status 2 and exactly one line on stderr, naming the problem; no traceback, nothing on stdout."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("esper: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "toml", "message", "separate_process"),
    [
        (["train", "heuristic", "--task", "mnist"], None, r"unknown task 'mnist'; known tasks: digits, digits-", True),
        (["train", "ppo"], "[ppo]\nlearning_rat = 0.1\n", r"unknown config key 'ppo\.learning_rat'", False),
        (["train", "ppo"], "[policy]\nhiden_dim = 8\n", r"unknown network sizes \['hiden_dim'\]", False),
        (
            ["train", "heuristic", "--task", "cifar10", "--data-dir", "{tmp}/nonexistent"],
            None,
            r"CIFAR-10 directory .*nonexistent does not exist",
            False,
        ),
        (["evaluate", "--controller", "heurstic"], None, r"unknown controller 'heurstic'", False),
        (["train", "ppo"], '[warm_start]\ndemonstrator = "schedule:lora"\n', r"unknown schedule schedule:lora", False),
        (["train", "ppo"], "[warm_start]\ntarget_probability = 2.0\n", r"warm_start\.target_probability", False),
    ],
    ids=[
        "unknown-task",
        "unknown-config-key",
        "unknown-policy-size",
        "missing-cifar",
        "unknown-controller",
        "demonstrator-of-another-topology",
        "cloning-target-out-of-range",
    ],
)
def test_bad_input_leaves_nothing_behind(
    args: list[str],
    toml: str | None,
    message: str,
    separate_process: bool,
    run_refused: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    extra = ["--out", str(out), "--quiet"]
    if toml is not None:
        (tmp_path / "bad.toml").write_text(toml)
        extra += ["--config", str(tmp_path / "bad.toml")]
    command = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    refused(run_refused(tmp_path, *command, *extra, separate_process=separate_process), message)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.toml"] if toml is not None else [])


def foreign_checkpoint(run: Path, *, task: str | None = None, hidden_dim: int | None = None) -> TrainingCheckpoint:
    """The checkpoint another run would have written: another task, or a policy of another size."""
    own = load_checkpoint(run / "checkpoints" / "latest.pt")
    config = json.loads(json.dumps(own.config))
    policy_state, build_config = own.policy_state, own.policy_build_config
    if task is not None:
        config["task"] = task
    if hidden_dim is not None:
        register_builtin_policies()
        bundle = create_policy("lstm", SlotConfig.from_ids(build_config["slot_config"]), hidden_dim=hidden_dim)
        config["policy"] = {"kind": "lstm", "hidden_dim": hidden_dim}
        policy_state, build_config = bundle.state_dict(), bundle.build_config()
    return TrainingCheckpoint(own.rounds_completed, policy_state, build_config, own.updater_state, own.rng, config)


@pytest.mark.parametrize(
    ("case", "message", "separate_process"),
    [
        ("truncated", r"checkpoint .*latest\.pt is corrupt or unreadable", True),
        ("other-policy-size", r"the checkpoint does not belong to this run: its 'policy' settings differ", False),
        ("other-task", r"the checkpoint does not belong to this run: its 'task' settings differ", False),
        ("finished", r"already completed 2 rounds; pass --rounds N with N > 2", False),
        ("no-run", r"is not an Esper run directory \(no config\.json\)", False),
    ],
)
def test_resume_refusals_leave_the_run_untouched(
    case: str,
    message: str,
    separate_process: bool,
    ppo_run: Path,
    run_refused: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    if case == "truncated":
        latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    elif case == "other-policy-size":
        save_checkpoint(latest, foreign_checkpoint(run, hidden_dim=16))
    elif case == "other-task":
        save_checkpoint(latest, foreign_checkpoint(run, task="digits-strong"))
    elif case == "no-run":
        (run / "config.json").unlink()
    before = snapshot(run)
    args = ["train", "ppo", "--resume", str(run), "--quiet"]
    refused(run_refused(tmp_path, *args, separate_process=separate_process), message)
    assert snapshot(run) == before


def test_compare_with_a_corrupt_run_directory_writes_nothing(
    ppo_run: Path, run_refused: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, tiny_config: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    out = tmp_path / "compare"
    controllers = f"static,{run}:latest"
    args = ["compare", "--controllers", controllers, "--config", str(tiny_config), "--out", str(out), "--quiet"]
    refused(run_refused(tmp_path, *args, separate_process=False), r"corrupt or unreadable")
    assert not out.exists()


# ------------------------------------------------------------------------------------- malformed checkpoints
Path_ = tuple[str | int, ...]
#: A number or a container where the checkpoint holds something else, or the field gone.
_REPLACEMENTS: tuple[tuple[str, Callable[[object], object]], ...] = (
    ("none", lambda _: None),
    ("text", lambda _: "text"),
    ("tensor", lambda _: torch.tensor(1.0)),
    ("negative", lambda value: -value.abs() - 1 if isinstance(value, torch.Tensor) else -1),
    ("nested", lambda value: {"nested": value}),
    ("listed", lambda value: [value]),
)


def _paths(value: object, path: Path_ = ()) -> Iterator[Path_]:
    """Paths to the fields worth mutating: every mapping entry, the first two items of a list, and only a few
    of the network's tensors (all normalizer buffers, one weight) and of the optimizer's per-parameter state."""
    if isinstance(value, dict):
        keys = list(value)
        if path[-1:] in (("network",), ("state",)):
            keys = [k for k in keys if str(k).startswith("normalizer.")] + keys[:1]
        for key in keys:
            yield (*path, key)
            yield from _paths(value[key], (*path, key))
    elif isinstance(value, list | tuple):
        for index in range(min(2, len(value))):
            yield (*path, index)
            yield from _paths(value[index], (*path, index))


def _mutated(value: Any, path: Path_, replace: Callable[[object], object] | None) -> Any:
    """``value`` with the field at ``path`` replaced (deleted when ``replace`` is None); containers along the
    path are copied, everything else is shared."""
    if not path:
        assert replace is not None
        return replace(value)
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        copied = dict(value)
        if not rest and replace is None:
            del copied[key]
        else:
            copied[key] = _mutated(value[key], rest, replace)
        return copied
    items = list(value)
    items[int(key)] = _mutated(items[int(key)], rest, replace)
    return type(value)(items)


def checkpoint_corpus(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of a real checkpoint mutated in every way of ``_REPLACEMENTS``, plus deleted."""
    payload: dict[str, Any] = torch.load(source, weights_only=True)
    for path in _paths(payload):
        if path[0] == "config":
            continue  # the run config is compared with config.json by --resume, tested above
        name = ".".join(str(p) for p in path)
        parent: Any = payload
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict):
            yield f"{name}:missing", _mutated(payload, path, None)
        for label, replace in _REPLACEMENTS:
            if parent[path[-1]] is None and label == "none":
                continue  # replacing None by None changes nothing
            yield f"{name}:{label}", _mutated(payload, path, replace)


def _load_like_the_cli(run: Path) -> None:
    """What --controller and --resume read: the policy, the updater state and the RNG states."""
    register_builtin_policies()  # as the CLI does on start; without it every load fails before reading a field
    policy = load_policy(run, "cpu", TASKS["digits"], which="latest")
    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    PPOUpdater(policy, PPOConfig()).load_state_dict(checkpoint.updater_state)
    with torch.random.fork_rng(devices=[]):
        python, numpy = random.getstate(), np.random.get_state()
        try:
            restore_rng_states(checkpoint.rng)
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def test_every_malformed_checkpoint_field_is_a_checkpoint_error(ppo_run: Path, tmp_path: Path) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    source = tmp_path / "source.pt"
    shutil.copy(latest, source)
    accepted: list[str] = []
    refused_names: list[str] = []
    for name, payload in checkpoint_corpus(source):
        torch.save(payload, latest)
        try:
            _load_like_the_cli(run)
        except CheckpointError:
            refused_names.append(name)
        else:
            accepted.append(name)
    # Whatever was accepted is a value the checkpoint may legitimately hold (any other exception fails above).
    legitimate = re.compile(
        r"^(rng\.python\.1\.\d+:negative|updater_state\.returns\.mean:negative|"
        r"policy_state\.network\.([^:]*weight[^:]*|normalizer\.mean):negative|"
        r"updater_state\.optimizer\.state\.\d+\.(step:tensor|exp_avg:negative))$"
    )
    assert [name for name in accepted if not legitimate.match(name)] == []
    for required in (
        "rounds_completed:tensor",
        "rounds_completed:none",
        "policy_state.network.normalizer.count:negative",
        "policy_state:missing",
        "updater_state.returns.count:negative",
        "updater_state.optimizer.state:nested",
        "rng.torch:text",
        "policy_build_config.sizes:listed",
    ):
        assert required in refused_names, required


@pytest.mark.parametrize(
    ("field", "read_by_evaluate"),
    [
        ("rounds_completed:tensor", True),
        ("policy_state.network.normalizer.count:negative", True),
        ("updater_state.optimizer.state.0:nested", False),  # only training reads the optimizer state
        ("updater_state.returns:none", False),
        ("rng.numpy.1:text", True),
        ("policy_build_config.slot_config:listed", True),
        ("policy_state.network:missing", True),
    ],
)
def test_the_cli_refuses_malformed_checkpoints_in_one_line(
    field: str,
    read_by_evaluate: bool,
    ppo_run: Path,
    run_refused: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    tiny_config: Path,
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    payload = dict(checkpoint_corpus(latest))[field]
    torch.save(payload, latest)
    before = snapshot(run)
    named = r"checkpoint|weight|normalizer|optimizer"
    if read_by_evaluate:
        controller = f"{run}:latest"
        evaluate = ["evaluate", "--controller", controller, "--episodes", "1", "--config", str(tiny_config), "--quiet"]
        refused(run_refused(tmp_path, *evaluate, "--out", str(tmp_path / "eval"), separate_process=False), named)
    resume = ["train", "ppo", "--resume", str(run), "--rounds", "3", "--quiet"]
    refused(run_refused(tmp_path, *resume, separate_process=False), named)
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------- devices, labels, tasks
def _move_run_to(run: Path, device: str) -> None:
    """Rewrite a run (config and checkpoint) as if it had been trained on ``device``."""
    config = read_json(run / "config.json")
    config["run"]["device"] = config["env"]["device"] = device
    (run / "config.json").write_text(json.dumps(config))
    latest = run / "checkpoints" / "latest.pt"
    checkpoint = load_checkpoint(latest)
    checkpoint.config["run"]["device"] = checkpoint.config["env"]["device"] = device
    save_checkpoint(latest, checkpoint)


def test_resume_may_continue_on_another_device(ppo_run: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    """The device says where a run computes, not what its episodes are: a GPU run continues on the CPU."""
    run = copy_run(ppo_run, tmp_path / "run")
    _move_run_to(run, "cuda")
    args = ["train", "ppo", "--resume", str(run), "--rounds", "3", "--device", "cpu", "--quiet"]
    succeeded(run_cli(cli_env, tmp_path, *args))
    assert read_json(run / "config.json")["run"]["device"] == "cpu"
    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert checkpoint.rounds_completed == 3 and checkpoint.config["env"]["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("flag", [["--device", "cuda"], []], ids=["asked", "recorded"])
def test_resume_on_cuda_without_a_gpu_is_a_clear_error(
    flag: list[str], ppo_run: Path, run_refused: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    if not flag:
        _move_run_to(run, "cuda")
    before = snapshot(run)
    args = ["train", "ppo", "--resume", str(run), "--rounds", "3", *flag, "--quiet"]
    refused(
        run_refused(tmp_path, *args, separate_process=False),
        r"device .cuda. asked, but this machine has no usable CUDA GPU",
    )
    assert snapshot(run) == before


def test_compare_tells_run_directories_with_the_same_name_apart(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    first, second = copy_run(ppo_run, tmp_path / "a" / "ppo"), copy_run(ppo_run, tmp_path / "b" / "ppo")
    out = tmp_path / "compare"
    args = ["compare", "--controllers", f"static,{first},{second}", "--episodes", "1", "--config", str(tiny_config)]
    succeeded(run_cli(cli_env, tmp_path, *args, "--envs", "1", "--backend", "inprocess", "--quiet", "--out", str(out)))
    labels = ["static", "learned-deterministic (a/ppo)", "learned-deterministic (b/ppo)"]
    assert [s["controller"] for s in read_json(out / "results.json")["controllers"]] == labels


def test_a_policy_is_refused_on_another_task(
    ppo_run: Path, run_refused: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, tiny_config: Path
) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--controller", str(ppo_run), "--task", "digits-strong", "--config", str(tiny_config)]
    refused(
        run_refused(tmp_path, *args, "--out", str(out), "--quiet", separate_process=True),
        r"was trained on task 'digits', not 'digits-strong'",
    )
    assert not out.exists()


def test_resume_keeps_the_best_score_so_far(ppo_run: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    """A best.pt whose recorded score no later validation can reach must survive a resume untouched."""
    run = copy_run(ppo_run, tmp_path / "run")
    best_path = run / "checkpoints" / "best.pt"
    planted = load_checkpoint(best_path)
    planted.config = {**planted.config, "validation": {"round": 1, "mean_val_accuracy": 100.0}}
    save_checkpoint(best_path, planted)
    before = best_path.read_bytes()
    succeeded(run_cli(cli_env, tmp_path, "train", "ppo", "--resume", str(run), "--rounds", "3", "--quiet"))
    last = of_kind(run, "validation")[-1]
    assert last["round"] == 2 and not last["new_best"] and last["best_val_accuracy"] == 100.0
    assert best_path.read_bytes() == before


# ----------------------------------------------------------------------------------- language-model tasks
#: Two-epoch episodes of 8 sampled windows each: the byte-level task's full pipeline in seconds.
BYTES_TOML = "[run]\nepochs = 2\n[env]\nepoch_examples = 8\n"
BYTES_METRIC = "next-token acc"


@pytest.fixture
def bytes_config(tmp_path: Path) -> Path:
    path = tmp_path / "bytes.toml"
    path.write_text(BYTES_TOML)
    return path


def test_every_command_runs_the_embedded_language_model_task(
    cli_env: dict[str, str], tmp_path: Path, bytes_config: Path
) -> None:
    """train heuristic, train ppo, evaluate and compare (with every fixed schedule of the transformer topology)
    run unchanged on pydoc-bytes, and every report names its metric, next-token accuracy."""
    rest = ["--task", "pydoc-bytes", "--config", str(bytes_config), "--envs", "2", "--backend", "inprocess", "--quiet"]
    heuristic = tmp_path / "heuristic"
    succeeded(run_cli(cli_env, tmp_path, "train", "heuristic", "--episodes", "2", *rest, "--out", str(heuristic)))
    data = read_json(heuristic / "config.json")["data"]
    assert data["metric"] == "next-token accuracy" and data["examples"] == "windows of 64 bytes"
    assert data["sizes"]["validation"] == BYTES_VALIDATION_WINDOWS and data["split_seed"] is None
    assert f"| seed | test {BYTES_METRIC} % | val {BYTES_METRIC} % |" in (heuristic / "summary.md").read_text()
    epochs = of_kind(heuristic, "epoch")
    assert len(epochs) == 2 * 2 and all(0.0 <= e["val_accuracy"] <= 100.0 for e in epochs)

    ppo = tmp_path / "ppo"
    with_bar = [arg for arg in rest if arg != "--quiet"]  # the round's console line is written beside the bar
    result = succeeded(run_cli(cli_env, tmp_path, "train", "ppo", "--rounds", "1", *with_bar, "--out", str(ppo)))
    assert f"round 0: test {BYTES_METRIC} " in result.stderr and f"val {BYTES_METRIC} " in result.stderr
    assert f"round 0 validation (argmax): val {BYTES_METRIC} " in result.stderr
    assert read_json(ppo / "results.json")["data"]["metric"] == "next-token accuracy"
    ppo_summary = (ppo / "summary.md").read_text()
    assert "The metric is **next-token accuracy**" in ppo_summary
    assert f"| round | mean test {BYTES_METRIC} % | mean val {BYTES_METRIC} % |" in ppo_summary
    assert f"| round | argmax val {BYTES_METRIC} % |" in ppo_summary

    evaluate = tmp_path / "evaluate"
    args = ["evaluate", "--controller", "schedule:mlp", "--episodes", "1", *rest, "--out", str(evaluate)]
    succeeded(run_cli(cli_env, tmp_path, *args))
    assert read_json(evaluate / "results.json")["controller"] == "schedule:mlp"
    assert {e["op"] for e in of_kind(evaluate, "epoch")} >= {"GERMINATE"}

    compare = tmp_path / "compare"
    args = ["compare", "--controllers", f"static,heuristic,schedules,{ppo}", "--baseline", "static", "--episodes", "1"]
    result = succeeded(run_cli(cli_env, tmp_path, *args, *rest, "--out", str(compare)))
    results = read_json(compare / "results.json")
    schedules = ["schedule:" + name for name in ("norm", "attention", "lora", "lora_large", "mlp_small", "mlp")]
    learned = "learned-deterministic (ppo)"
    assert [s["controller"] for s in results["controllers"]] == ["static", "heuristic", *schedules, learned]
    assert set(results["paired_vs_baseline"]) == {"heuristic", *schedules, learned}
    summary = (compare / "summary.md").read_text()
    header = f"| controller | test {BYTES_METRIC} % [95% CI] | val {BYTES_METRIC} % [95% CI] |"
    assert len(table_rows(summary, header)) == 9
    assert f"| controller | test {BYTES_METRIC} minus static (pp) [95% CI] |" in summary
    assert header in result.stdout

    refused_run = run_cli(cli_env, tmp_path, "evaluate", "--controller", "schedule:conv_light", *rest)
    assert refused_run.returncode == 2 and "unknown schedule schedule:conv_light" in refused_run.stderr


def test_tinystories_runs_from_a_data_directory(cli_env: dict[str, str], tmp_path: Path, bytes_config: Path) -> None:
    data_dir = tmp_path / "tinystories"
    data_dir.mkdir()
    story = "Once upon a time there was a little cat. The cat liked to play in the sun. "
    for name, count in (("TinyStories-train.txt", 400), ("TinyStories-valid.txt", 500)):
        text = "".join(f"{story * 3}{index}\n<|endoftext|>\n" for index in range(count))
        (data_dir / name).write_text(text, encoding="utf-8")
    out = tmp_path / "heuristic"
    args = ["train", "heuristic", "--task", "tinystories-bytes", "--data-dir", str(data_dir), "--episodes", "1"]
    rest = ["--config", str(bytes_config), "--envs", "1", "--backend", "inprocess", "--quiet", "--out", str(out)]
    succeeded(run_cli(cli_env, tmp_path, *args, *rest))
    data = read_json(out / "config.json")["data"]
    assert data["split"].startswith("TinyStories: the first")
    assert data["sizes"]["validation"] == BYTES_VALIDATION_WINDOWS
    assert len(of_kind(out, "episode")) == 1

    missing = run_cli(cli_env, tmp_path, "train", "heuristic", "--task", "tinystories-bytes", "--quiet")
    assert missing.returncode == 2 and "pass --data-dir" in missing.stderr
