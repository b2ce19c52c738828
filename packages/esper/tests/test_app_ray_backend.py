"""``--backend ray`` at the command line: every command takes it, a missing Ray is one clear line, a run on Ray
writes the same episodes and policy as the process backend, and Ctrl-C stops a Ray started by the command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from esper.app.cli import build_parser, main
from esper.simic.checkpoints import load_checkpoint

TINY = ["--envs", "2", "--seed", "3", "--epochs", "2", "--quiet"]


@pytest.mark.parametrize(
    "command",
    [
        ["train", "ppo"],
        ["train", "heuristic"],
        ["evaluate", "--controller", "heuristic"],
        ["compare"],
    ],
)
def test_every_command_takes_the_ray_flags(command: list[str]) -> None:
    flags = ["--backend", "ray", "--ray-address", "10.1.2.3:6379", "--ray-num-cpus", "3", "--workers", "4"]
    args = build_parser().parse_args([*command, *flags, "--ray-cpus-per-actor", "2", "--ray-gpus-per-actor", "0.5"])
    assert (args.backend, args.ray_address, args.ray_num_cpus, args.workers) == ("ray", "10.1.2.3:6379", 3, 4)
    assert (args.ray_cpus_per_actor, args.ray_gpus_per_actor) == (2.0, 0.5)


def test_without_ray_the_ray_backend_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if Ray were not installed
    monkeypatch.delitem(sys.modules, "esper.simic.envs.ray_pool", raising=False)
    out = tmp_path / "run"
    assert main(["train", "heuristic", "--backend", "ray", "--out", str(out), *TINY]) == 2
    error = capsys.readouterr().err
    assert error == (
        'esper: error: --backend ray needs Ray, which is not installed: pip install "esper[ray]" '
        "(in a checkout of Esper: uv sync --group ray)\n"
    )
    assert not out.exists()


def _same(ours: Any, theirs: Any) -> bool:
    """Equal, tensors bit for bit, through nested dicts and lists (a policy's state)."""
    if isinstance(ours, torch.Tensor):
        return isinstance(theirs, torch.Tensor) and torch.equal(ours, theirs)
    if isinstance(ours, dict):
        return (
            isinstance(theirs, dict)
            and ours.keys() == theirs.keys()
            and all(_same(v, theirs[k]) for k, v in ours.items())
        )
    if isinstance(ours, list | tuple):
        return type(ours) is type(theirs) and len(ours) == len(theirs) and all(map(_same, ours, theirs))
    return bool(ours == theirs)


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_a_ppo_run_on_ray_equals_one_on_worker_processes(tmp_path: Path) -> None:
    """On the suite's Ray cluster when the simic tests started it (the pool joins a connected driver's Ray),
    else on a Ray the command starts and stops."""
    pytest.importorskip("ray")
    runs = {}
    for backend in ("ray", "processes"):
        out = tmp_path / backend
        assert main(["train", "ppo", "--rounds", "1", "--backend", backend, "--out", str(out), *TINY]) == 0
        runs[backend] = (
            json.loads((out / "results.json").read_text()),
            load_checkpoint(out / "checkpoints" / "latest.pt"),
        )
    (ray_results, ray_checkpoint), (process_results, process_checkpoint) = runs["ray"], runs["processes"]
    assert ray_results["last_round_episodes"] == process_results["last_round_episodes"]
    assert ray_results["rounds"][0]["mean_return"] == process_results["rounds"][0]["mean_return"]
    assert _same(ray_checkpoint.policy_state, process_checkpoint.policy_state)
    assert _same(ray_checkpoint.updater_state, process_checkpoint.updater_state)


def _like_a_terminal_job() -> None:
    """A session of its own (Ctrl-C in a terminal reaches every process of that group), with the default SIGINT
    action even when this test process ignores SIGINT: a child inherits an ignored SIGINT, and Python then never
    turns it into KeyboardInterrupt (a suite started as a background job of a non-interactive shell ignores it)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _an_epoch_was_stepped(events: Path) -> bool:
    """An actor is stepping an env: an ``epoch`` event is complete (a decision at epoch 0 comes before any step)."""
    if not events.exists():
        return False
    complete = events.read_text().splitlines(keepends=True)
    return any(line.endswith("\n") and json.loads(line).get("event") == "epoch" for line in complete)


def _session_processes(session: int) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if line.split() and int(line.split()[0]) == session]


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_ctrl_c_stops_a_local_ray_and_its_actors(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "esper.app.cli", "train", "heuristic", "--backend", "ray", "--ray-num-cpus", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    process = subprocess.Popen(
        [*command, "--envs", "1", "--episodes", "4", "--epochs", "40", "--quiet", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_like_a_terminal_job,
    )
    try:
        events = out / "events.jsonl"
        deadline = time.monotonic() + 600
        while not _an_epoch_was_stepped(events):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "esper: interrupted"
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 60
    while (left := _session_processes(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, left  # Ray's own processes and the env actor are gone too
