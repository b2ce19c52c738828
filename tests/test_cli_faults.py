"""Faults a long training run meets, met through the command line: foreign checkpoints, kills between a
checkpoint and its log, damaged logs, concurrent resumes, dead workers, signals, unwritable and full disks, bad
devices and config files, flipped checkpoint bytes, file modes, and settings changed on resume.

The harness (subprocess runner, the shared 2-round PPO run, refusal checks) is the end-to-end suite's; each test
that changes a run works on its own copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_cli_end_to_end as e2e

from esper.app.cli import main
from esper.app.run_directory import RunDirectory
from esper.simic.checkpoints import TrainingCheckpoint, load_checkpoint, save_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

# The end-to-end suite's harness and session fixtures (the shared PPO run is made once per session).
PPO, copy_run, of_kind, read_json, refused, run_cli, snapshot, succeeded = (
    e2e.PPO,
    e2e.copy_run,
    e2e.of_kind,
    e2e.read_json,
    e2e.refused,
    e2e.run_cli,
    e2e.snapshot,
    e2e.succeeded,
)
shared_root, cli_env, ppo_run, run_refused = e2e.shared_root, e2e.cli_env, e2e.ppo_run, e2e.run_refused
heuristic_run, tiny_config = e2e.heuristic_run, e2e.tiny_config

Refuser = Callable[..., subprocess.CompletedProcess[str]]


def _without_timing(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rounds]


def _scalar_steps(run: Path, tag: str = "episode/test_accuracy") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-untyped]

    accumulator = EventAccumulator(str(run / "tensorboard"))
    accumulator.Reload()
    return [event.step for event in accumulator.Scalars(tag)]


def _resume(env: dict[str, str], cwd: Path, run: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env, cwd, "train", "ppo", "--resume", str(run), "--quiet", *extra)


# ------------------------------------------------------------------------------------- 1. foreign checkpoints
def _relabelled(run: Path, *, seed: int | None = None, run_id: str | None = None) -> TrainingCheckpoint:
    own = load_checkpoint(run / "checkpoints" / "latest.pt")
    config = json.loads(json.dumps(own.config))
    if seed is not None:
        config["run"]["seed"] = seed
    if run_id is not None:
        config["run_id"] = run_id
    return TrainingCheckpoint(
        own.rounds_completed, own.policy_state, own.policy_build_config, own.updater_state, own.rng, config
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other-seed", r"does not belong to this run: its 'run\.seed' setting differs"),
        ("other-run-same-settings", r"does not belong to this run: it was written by run '0+'"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused(
    case: str, message: str, ppo_run: Path, run_refused: Refuser, tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    if case == "other-seed":
        save_checkpoint(latest, _relabelled(run, seed=1))
    else:
        save_checkpoint(latest, _relabelled(run, run_id="0" * 32))
    before = snapshot(run)
    refused(
        run_refused(tmp_path, "train", "ppo", "--resume", str(run), "--rounds", "3", separate_process=False), message
    )
    assert snapshot(run) == before


def test_each_run_has_its_own_id_in_config_and_checkpoint(ppo_run: Path) -> None:
    run_id = read_json(ppo_run / "config.json")["run_id"]
    assert isinstance(run_id, str) and len(run_id) == 32
    assert load_checkpoint(ppo_run / "checkpoints" / "latest.pt").config["run_id"] == run_id


# ------------------------------------------------------------------- 3. a kill between checkpoint and log
class _Killed(BaseException):
    """Stands for the process dying at that instant (nothing after it runs)."""


def _train_killed_at_checkpoint(
    monkeypatch: pytest.MonkeyPatch, out: Path, *, rounds_at_kill: int, after_write: bool
) -> None:
    def save(path: Path, checkpoint: TrainingCheckpoint) -> None:
        if checkpoint.rounds_completed == rounds_at_kill:
            if after_write:
                save_checkpoint(path, checkpoint)
            raise _Killed
        save_checkpoint(path, checkpoint)

    with monkeypatch.context() as patch:
        patch.setattr("esper.simic.training.save_checkpoint", save)
        with pytest.raises(_Killed):
            main([*PPO, "--out", str(out)])


@pytest.mark.parametrize("after_write", [True, False], ids=["after-checkpoint-write", "before-checkpoint-write"])
def test_a_kill_at_the_checkpoint_loses_no_round(
    after_write: bool,
    ppo_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    _train_killed_at_checkpoint(monkeypatch, out, rounds_at_kill=2, after_write=after_write)
    assert [r["round"] for r in of_kind(out, "round")] == [0, 1]  # the log is never behind the checkpoint
    assert load_checkpoint(out / "checkpoints" / "latest.pt").rounds_completed == (2 if after_write else 1)

    if after_write:  # the checkpoint is complete, only the summary is missing: the report rebuilds it
        assert main(["report", str(out)]) == 0
    else:  # round 1 is trained again; what the log held of it is replaced, not duplicated
        assert main(["train", "ppo", "--resume", str(out), "--quiet"]) == 0
    capsys.readouterr()
    rounds = of_kind(out, "round")
    assert _without_timing(rounds) == _without_timing(of_kind(ppo_run, "round"))  # same as uninterrupted
    assert len(of_kind(out, "epoch")) == len(of_kind(ppo_run, "epoch")) == 2 * 2 * 3
    assert of_kind(out, "episode") == of_kind(ppo_run, "episode")
    assert _scalar_steps(out) == [0, 1]
    assert _without_timing(read_json(out / "results.json")["rounds"]) == _without_timing(rounds)
    assert read_json(out / "results.json")["status"] == "complete"


def test_kill_9_after_a_checkpoint_resumes_bit_identically(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "esper.app.cli", *PPO, "--out", str(out)],
        cwd=tmp_path,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latest = out / "checkpoints" / "latest.pt"
    while not latest.exists() and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.wait()
    succeeded(_resume(cli_env, tmp_path, out))
    assert _without_timing(of_kind(out, "round")) == _without_timing(of_kind(ppo_run, "round"))
    assert of_kind(out, "episode") == of_kind(ppo_run, "episode")
    final, reference = load_checkpoint(latest), load_checkpoint(ppo_run / "checkpoints" / "latest.pt")
    assert final.rounds_completed == 2
    for name, tensor in reference.policy_state.items():
        if hasattr(tensor, "shape"):
            assert (final.policy_state[name] == tensor).all(), name


# ---------------------------------------------------------------------------------------- 4. esper report
def test_report_rebuilds_summary_results_and_plots(ppo_run: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    for name in ("summary.md", "results.json", "plots/learning_curves.png", "plots/lifecycle.png"):
        (run / name).unlink()
    succeeded(run_cli(cli_env, tmp_path, "report", str(run)))
    for name in ("summary.md", "results.json", "plots/learning_curves.png", "plots/lifecycle.png"):
        assert (run / name).is_file()
    assert read_json(run / "results.json") == read_json(ppo_run / "results.json")
    assert (run / "summary.md").read_text() == (ppo_run / "summary.md").read_text()


def _rebuilt_by_report(run: Path, env: dict[str, str], cwd: Path, plots: list[str]) -> None:
    """Delete what a run wrote at its end, rebuild it with ``esper report``, and check it is the same."""
    results, summary = read_json(run / "results.json"), (run / "summary.md").read_text()
    for name in ("summary.md", "results.json", *plots):
        (run / name).unlink()
    succeeded(run_cli(env, cwd, "report", str(run)))
    assert read_json(run / "results.json") == results
    assert (run / "summary.md").read_text() == summary
    assert all((run / name).is_file() for name in plots)


def test_report_rebuilds_heuristic_and_compare_runs(
    heuristic_run: Path, cli_env: dict[str, str], tmp_path: Path, tiny_config: Path
) -> None:
    _rebuilt_by_report(copy_run(heuristic_run, tmp_path / "heuristic"), cli_env, tmp_path, ["plots/lifecycle.png"])
    out = tmp_path / "compare"
    args = ["compare", "--controllers", "static,random", "--episodes", "2", "--config", str(tiny_config)]
    succeeded(run_cli(cli_env, tmp_path, *args, "--envs", "2", "--backend", "inprocess", "--quiet", "--out", str(out)))
    plots = ["plots/comparison.png", "plots/lifecycle-static.png", "plots/lifecycle-random.png"]
    _rebuilt_by_report(out, cli_env, tmp_path, plots)


def test_resume_of_a_complete_run_without_summary_writes_it(
    ppo_run: Path, run_refused: Refuser, tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    (run / "summary.md").unlink()
    (run / "results.json").unlink()
    result = run_refused(tmp_path, "train", "ppo", "--resume", str(run), "--quiet", separate_process=False)
    assert result.returncode == 0, result.stderr
    assert (run / "summary.md").read_text() == (ppo_run / "summary.md").read_text()
    refused(  # with its summary, a complete run is still refused as before
        run_refused(tmp_path, "train", "ppo", "--resume", str(run), "--quiet", separate_process=False),
        r"already completed 2 rounds",
    )


# ------------------------------------------------------------------ 5 and 12. damaged log, stale temporaries
def test_resume_skips_a_partial_last_line_and_removes_stale_temporaries(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    with (run / "events.jsonl").open("a") as handle:
        handle.write('{"event": "epoch", "round": 1, "val_acc')  # what a power loss leaves
    stale = run / "checkpoints" / ".latest.pt.0123456789ab.tmp"
    stale.write_bytes(b"half a checkpoint")

    report = succeeded(run_cli(cli_env, tmp_path, "report", str(run)))
    assert re.search(r"esper: warning: .*events\.jsonl line \d+ is incomplete", report.stderr)

    result = succeeded(_resume(cli_env, tmp_path, run, "--rounds", "3"))
    assert "is incomplete or damaged" in result.stderr and "removed" in result.stderr
    assert not stale.exists()
    lines = (run / "events.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line is whole again
    assert {"event": "resume", "rounds_completed": 2, "rounds": 3} in parsed
    assert [r["round"] for r in read_json(run / "results.json")["rounds"]] == [0, 1, 2]


# ---------------------------------------------------------------------------------------- 6. one trainer
def test_a_run_being_trained_cannot_be_resumed_twice(ppo_run: Path, run_refused: Refuser, tmp_path: Path) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    descriptor = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a training process holds
        before = snapshot(run)
        args = ["train", "ppo", "--resume", str(run), "--rounds", "3", "--quiet"]
        refused(run_refused(tmp_path, *args, separate_process=True), r"is being trained by another process")
        assert snapshot(run) == before
    finally:
        os.close(descriptor)


def test_a_killed_trainer_leaves_no_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    from esper.app.run_lock import RunLock
    from esper.leyline import ConfigError

    # The context closes the holder's stdout pipe once it is dead (an open pipe is a ResourceWarning, an error).
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from esper.app.run_lock import RunLock; "
            "lock = RunLock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="being trained by another process"):
            RunLock(run)
        holder.kill()
    RunLock(run).release()  # the kernel dropped the killed holder's lock


# ------------------------------------------------------------------------- 7. dead workers and signals
def _like_a_terminal_job() -> None:
    """Its own process group (Ctrl-C in a terminal reaches the whole group), with the default SIGINT action even
    if this test process ignores SIGINT (as a pytest worker may)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_training(env: dict[str, str], out: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["train", "ppo", "--epochs", "3", "--rounds", "6", "--envs", "2", "--quiet", "--out", str(out), *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "esper.app.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_like_a_terminal_job,
    )


def _wait_for_checkpoint(process: subprocess.Popen[str], out: Path) -> None:
    while not (out / "checkpoints" / "latest.pt").exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    listing = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"], capture_output=True, text=True)
    return [int(p) for p in listing.stdout.split()]


def _one_line_with_resume_hint(stderr: str, out: Path, start: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(start), lines[0]
    assert f"continue with `esper train ppo --resume {out}`" in lines[0]
    assert "Traceback" not in stderr


def test_a_dead_worker_is_one_line_and_the_run_resumes(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = _start_training(cli_env, out, "--backend", "processes", "--workers", "2")
    _wait_for_checkpoint(process, out)
    workers = _children(process.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)  # what the out-of-memory killer does
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 2
    _one_line_with_resume_hint(stderr, out, "esper: error: env worker 1 died (killed by SIGKILL")
    rounds = load_checkpoint(out / "checkpoints" / "latest.pt").rounds_completed
    assert rounds >= 1
    succeeded(_resume(cli_env, tmp_path, out, "--rounds", str(rounds + 1), "--backend", "inprocess"))


@pytest.mark.parametrize(
    ("number", "status", "start"),
    [(signal.SIGINT, 130, "esper: interrupted"), (signal.SIGTERM, 143, "esper: terminated (SIGTERM)")],
)
def test_ctrl_c_and_sigterm_to_the_process_group_stop_cleanly(
    number: int, status: int, start: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    process = _start_training(cli_env, out, "--backend", "processes", "--workers", "2")
    _wait_for_checkpoint(process, out)
    os.killpg(process.pid, number)  # every process of the group: the trainer and its env workers
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == status
    _one_line_with_resume_hint(stderr, out, start)
    assert load_checkpoint(out / "checkpoints" / "latest.pt").rounds_completed >= 1


# ---------------------------------------------------------------------------------------- 8. output faults
def test_out_under_a_file_is_one_line(run_refused: Refuser, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = ["train", "ppo", "--rounds", "1", "--envs", "1", "--epochs", "1", "--quiet", "--out", f"{blocker}/run"]
    refused(run_refused(tmp_path, *args, separate_process=True), r"Not a directory \(ENOTDIR\)")


@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_out_on_a_read_only_filesystem_is_one_line(run_refused: Refuser, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as readonly:
        args = ["train", "ppo", "--rounds", "1", "--quiet", "--out", f"{readonly}/run"]
        refused(run_refused(tmp_path, *args, separate_process=True), r"Read-only file system \(EROFS\)")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_is_named_and_the_previous_checkpoint_survives(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    size = sum(p.stat().st_size for p in ppo_run.rglob("*") if p.is_file())
    kilobytes = (size + 256 * 1024) // 1024  # room for the log of one more round, not for another checkpoint
    with _tmpfs(tmp_path / "small", f"size={kilobytes}k") as disk:
        run = copy_run(ppo_run, disk / "run")
        before = (run / "checkpoints" / "latest.pt").read_bytes()
        result = _resume(cli_env, tmp_path, run, "--rounds", "3")
        assert result.returncode == 2, result.stderr
        _one_line_with_resume_hint(result.stderr, run, "esper: error: No space left on device (ENOSPC)")
        assert (run / "checkpoints" / "latest.pt").read_bytes() == before
        assert "after 2 rounds is intact" in result.stderr


def test_a_failed_checkpoint_write_is_named_and_the_previous_checkpoint_survives(
    ppo_run: Path, run_refused: Refuser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if Path(target).name.startswith(".latest.pt."):  # the temporary file of the next checkpoint
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    args = ["train", "ppo", "--resume", str(run), "--rounds", "3", "--quiet"]
    result = run_refused(tmp_path, *args, separate_process=False)
    assert result.returncode == 2
    _one_line_with_resume_hint(result.stderr, run, "esper: error: No space left on device (ENOSPC)")
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    assert not list((run / "checkpoints").glob(".*.tmp"))


# ------------------------------------------------------------------------------------------ 9. bad values
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "bogus"], r"unknown device 'bogus'"),
        (["--device", "cuda"], r"no usable CUDA GPU"),
        (["--seed", str(2**70)], r"run\.seed must be in \[0, 4294967295\]"),
        (["--config", "{latin}"], r"is not UTF-8 text"),
        (["--config", "{tmp}"], r"is a directory, not a TOML file"),
    ],
    ids=["bogus-device", "cuda-without-gpu", "huge-seed", "latin1-config", "directory-config"],
)
def test_bad_values_are_one_line(args: list[str], message: str, run_refused: Refuser, tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[run]\n# r\xe9glage\n".encode("latin-1"))
    command = [a.replace("{latin}", str(latin)).replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "out"
    refused(
        run_refused(tmp_path, "train", "ppo", *command, "--quiet", "--out", str(out), separate_process=False), message
    )
    assert not out.exists()


# ------------------------------------------------------------------------------------ 10. flipped bytes
def test_a_checkpoint_with_a_flipped_byte_is_refused(ppo_run: Path, run_refused: Refuser, tmp_path: Path) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    with zipfile.ZipFile(latest) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)  # the largest tensor
    data = bytearray(latest.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    data[member.header_offset + 30 + name_length + extra_length + member.file_size // 2] ^= 0x01
    latest.write_bytes(bytes(data))
    args = ["train", "ppo", "--resume", str(run), "--rounds", "3", "--quiet"]
    refused(run_refused(tmp_path, *args, separate_process=False), r"corrupt or unreadable: the checksum of")


# --------------------------------------------------------------------------------------- 11. small things
def test_run_files_respect_the_umask(ppo_run: Path) -> None:
    current = os.umask(0)
    os.umask(current)
    expected = 0o666 & ~current
    for name in ("config.json", "results.json", "summary.md", "events.jsonl", "checkpoints/latest.pt"):
        assert (ppo_run / name).stat().st_mode & 0o777 == expected, name


def test_default_run_directories_never_collide(tmp_path: Path) -> None:
    first = RunDirectory(tmp_path / "runs" / "digits-ppo-20260101-000000", tensorboard=False, unique=True)
    second = RunDirectory(tmp_path / "runs" / "digits-ppo-20260101-000000", tensorboard=False, unique=True)
    first.close()
    second.close()
    assert first.path != second.path
    assert second.path.name == "digits-ppo-20260101-000000-2"


def test_resume_refuses_out(ppo_run: Path, run_refused: Refuser, tmp_path: Path) -> None:
    args = ["train", "ppo", "--resume", str(ppo_run), "--out", str(tmp_path / "elsewhere"), "--quiet"]
    refused(run_refused(tmp_path, *args, separate_process=False), r"drop --out")
    assert not (tmp_path / "elsewhere").exists()


def test_resume_can_remove_the_compile_mode_and_the_time_budget(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    run = copy_run(ppo_run, tmp_path / "run")
    config = read_json(run / "config.json")
    config["run"].update(compile_mode="default", time_budget_minutes=1e-6)  # a budget that allows one round
    (run / "config.json").write_text(json.dumps(config))
    args = ["--rounds", "4", "--compile-mode", "none", "--time-budget-minutes", "none"]
    result = succeeded(_resume(cli_env, tmp_path, run, *args))
    stored = read_json(run / "config.json")["run"]
    assert stored["compile_mode"] is None and stored["time_budget_minutes"] is None
    assert [r["round"] for r in of_kind(run, "round")] == [0, 1, 2, 3]  # no budget stopped it after one round
    assert "time budget" not in result.stderr


def test_a_time_budget_stop_is_reported_in_quiet_mode(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*PPO, "--rounds", "3", "--time-budget-minutes", "0.000001", "--out", str(out)]
    result = succeeded(run_cli(cli_env, tmp_path, *args))
    assert f"time budget reached after 1 of 3 rounds; continue with `esper train ppo --resume {out}`" in result.stderr
    results = read_json(out / "results.json")
    assert results["status"] == "time_budget_reached" and results["rounds_planned"] == 3
    assert "stopped by its time budget after 1 of 3 rounds" in (out / "summary.md").read_text()


def test_evaluating_a_policy_on_other_episode_lengths_warns(
    ppo_run: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "two.toml"
    config.write_text("[run]\nepochs = 2\n")
    args = ["evaluate", "--controller", str(ppo_run), "--episodes", "1", "--envs", "1", "--config", str(config)]
    result = succeeded(
        run_cli(cli_env, tmp_path, *args, "--backend", "inprocess", "--quiet", "--out", str(tmp_path / "e"))
    )
    assert f"esper: warning: the policy in {ppo_run} was trained on 3-epoch episodes; these episodes have 2" in (
        result.stderr
    )
