"""``esper watch``: following a log that is still being written (half-written last lines, rewrites), folding it
into the view, drawing frames headlessly (rich into a StringIO console), and quitting on q or Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from esper.app.cli import main
from esper.app.commands.watch import RunWatcher, follow
from esper.app.event_follower import EventFollower

PPO_CONFIG: dict[str, Any] = {
    "task": "digits",
    "controller": "ppo",
    "run": {"rounds": 3, "envs": 2},
    "env": {"max_epochs": 3},
}


def line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


def epoch(round_index: int, env: int, number: int, op: str = "WAIT", slot: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "event": "epoch",
        "round": round_index,
        "env": env,
        "epoch": number,
        "val_accuracy": 40.0 + number,
        "reward": 0.1,
        "op": op,
        "slot": slot,
        "success": True,
        "lifecycle": extra.pop("lifecycle", []),
        **extra,
    }


def transition(slot: str, source: str, target: str) -> dict[str, Any]:
    return {"epoch": 0, "slot": slot, "from": source, "to": target, "blueprint": "conv_light"}


def round_event(index: int, accuracy: float) -> dict[str, Any]:
    update = {f"heads.{h}.entropy": 0.5 for h in ("op", "slot")} | {"heads.op.approx_kl": 0.0123, "approx_kl": 0.02}
    return {
        "event": "round",
        "round": index,
        "mean_test_accuracy": accuracy,
        "mean_val_accuracy": accuracy + 1,
        "mean_return": 0.25,
        "seconds": 30.0,
        "update": update,
    }


def run_dir(tmp_path: Path, config: dict[str, Any], events: list[dict[str, Any]]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    (run / "events.jsonl").write_text("".join(map(line, events)))
    return run


def frame(watcher: RunWatcher, width: int = 110) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(watcher.frame())
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


# ------------------------------------------------------------------------------------------- the follower
def test_a_half_written_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    whole = line({"event": "a"})
    log.write_text(whole + '{"event": "b", "x"')
    follower = EventFollower(log)
    assert follower.poll().events == [{"event": "a"}]
    assert follower.poll().events == []  # nothing new, the partial line is still held back
    with log.open("a") as handle:
        handle.write(': 1}\n{"event": "c"}\n')
    poll = follower.poll()
    assert poll.events == [{"event": "b", "x": 1}, {"event": "c"}] and not poll.restarted
    assert follower.damaged_lines == 0


def test_damaged_complete_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text('{"event": "a"}\n{"event": "cut off\n[1, 2]\n{"event": "b"}\n')
    follower = EventFollower(log)
    assert follower.poll().events == [{"event": "a"}, {"event": "b"}]
    assert follower.damaged_lines == 2


def test_a_rewritten_log_is_read_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(line({"event": "a", "round": 0}) + line({"event": "a", "round": 1}))
    follower = EventFollower(log)
    assert len(follower.poll().events) == 2
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(line({"event": "a", "round": 0}))
    replacement.replace(log)  # what a resume does: the log without the rounds it trains again
    poll = follower.poll()
    assert poll.restarted and poll.events == [{"event": "a", "round": 0}]


def test_a_missing_log_is_an_empty_one(tmp_path: Path) -> None:
    poll = EventFollower(tmp_path / "events.jsonl").poll()
    assert poll.events == [] and not poll.restarted


# ---------------------------------------------------------------------------------------------- the view
def test_a_ppo_run_being_written(tmp_path: Path) -> None:
    events = [
        epoch(0, 0, 1),
        epoch(0, 1, 1),
        round_event(0, 30.0),
        {"event": "validation", "round": 0, "mean_val_accuracy": 35.0},
        epoch(1, 0, 1, "GERMINATE", 1, lifecycle=[transition("r0c1", "DORMANT", "GERMINATED")]),
        epoch(1, 1, 1),
        epoch(1, 0, 2, "ADVANCE", 1, lifecycle=[transition("r0c1", "GERMINATED", "TRAINING")]),
        {"event": "host", "round": 1, "env": 1, "epoch": 1, "signal": "plateau"},
    ]
    run = run_dir(tmp_path, PPO_CONFIG, events)
    with (run / "events.jsonl").open("a") as handle:
        handle.write('{"event": "epoch", "round": 1, "env": 1, "ep')  # the writer is in mid-line
    watcher = RunWatcher(run)
    text = frame(watcher)
    assert "train ppo on digits" in text
    assert "round 1 of 3 done, round 1 running" in text
    assert "5 of 18 epochs" not in text and "28% of steps" in text  # 5 of 3 rounds x 2 envs x 3 epochs
    assert "about 1m00s left" in text  # two rounds left at the 30 s the one finished round took
    assert "r0c1  ·GT" not in text
    rows = [row for row in text.splitlines() if "env 0" in row or "r0c1" in row]
    assert any("env 0" in row and "··" in row for row in rows)
    assert any("r0c1" in row and "GT" in row for row in rows)  # env 0: germinated after epoch 1, training after 2
    assert "ADVANCE r0c1" in text
    assert "r1 env 1 epoch 1: host plateau" in text
    assert "0.0123" in text  # the op head's KL of the last update
    assert watcher.state.steps_done == 5

    with (run / "events.jsonl").open("a") as handle:  # the line is finished, the round too
        handle.write('och": 2, "val_accuracy": 44.0, "op": "WAIT", "slot": 0, "success": true, "reward": 0.0}\n')
        handle.write(line(round_event(1, 31.0)) + line(round_event(2, 32.0)))
    watcher.update()
    text = frame(watcher)
    assert watcher.state.steps_done == 6
    assert "round 3 of 3 done" in text and "finished" in text
    assert watcher.follower.damaged_lines == 0


def test_an_episode_run_shows_each_controller_and_the_decisions(tmp_path: Path) -> None:
    config = {
        "task": "digits",
        "command": "compare",
        "controllers": ["heuristic", "learned"],
        "controller_names": ["heuristic", "learned-deterministic (x)"],
        "episode_seeds": [1, 2],
        "run": {"envs": 2},
        "env": {"max_epochs": 2},
    }
    policy_decision = {
        "event": "decision",
        "controller": "learned-deterministic (x)",
        "episode": 0,
        "epoch": 1,
        "op": "GERMINATE",
        "slot": 2,
        "heads": {
            "op": {"choice": "GERMINATE", "probability": 0.61, "entropy": 0.4},
            "slot": {"choice": "r0c2", "probability": 0.9, "entropy": 0.2},
            "blueprint": {"choice": "conv_heavy", "probability": 0.3, "entropy": 0.9},
        },
        "value": 0.37,
    }
    events = [
        {"event": "epoch", "controller": "heuristic", "episode": e, "epoch": n, "op": "WAIT", "slot": 0}
        for e in (0, 1)
        for n in (1, 2)
    ] + [
        {"event": "decision", "controller": "heuristic", "episode": 1, "epoch": 2, "op": "WAIT", "slot": 0,
         "rule": "nothing_to_do"},
        {"event": "episode", "controller": "heuristic", "episode": 0, "test_accuracy": 50.0, "total_reward": 0.5},
        {"event": "episode", "controller": "heuristic", "episode": 1, "test_accuracy": 60.0, "total_reward": 0.7},
        {"event": "epoch", "controller": "learned-deterministic (x)", "episode": 0, "epoch": 1, "op": "GERMINATE",
         "slot": 2, "lifecycle": [transition("r0c2", "DORMANT", "GERMINATED")]},
        policy_decision,
    ]  # fmt: skip
    text = frame(RunWatcher(run_dir(tmp_path, config, events)), width=220)
    assert "compare on digits" in text and "2 of 4 episodes done" in text
    assert "heuristic test acc %" in text and "60.00" in text
    assert "slot lifecycles" in text and "(learned-deterministic (x))" in text
    assert "heuristic #1 epoch 2: WAIT by rule nothing_to_do" in text
    assert "learned-deterministic (x) #0 epoch 1: GERMINATE r0c2 p=0.61 V=0.37 [blueprint conv_heavy 0.30]" in text
    assert "heads (learned-deterministic (x) decisions)" in text
    assert "op" in text and "0.40" in text  # the op head's mean entropy over the recorded decisions


def test_the_curves_name_the_task_s_metric(tmp_path: Path) -> None:
    config = {"task": "pydoc-bytes", "command": "evaluate", "controllers": ["static"], "episode_seeds": [1]}
    events = [{"event": "episode", "controller": "static", "episode": 0, "test_accuracy": 41.5, "total_reward": 0.3}]
    text = frame(RunWatcher(run_dir(tmp_path, config, events)), width=220)
    assert "static test next-token acc %" in text and "41.50" in text
    (tmp_path / "ppo").mkdir()
    ppo = frame(RunWatcher(run_dir(tmp_path / "ppo", {**PPO_CONFIG, "task": "pydoc-bytes"}, [round_event(0, 30.0)])))
    assert "test next-token acc % (round mean)" in ppo and "val next-token acc % (round mean)" in ppo


def test_a_compare_keeps_each_policy_s_head_entropies_apart(tmp_path: Path) -> None:
    """Two learned controllers in one compare: the heads panel shows the one that decided last, under its name,
    averaged over its own decisions only; a rule's germination names its blueprint; a policy's decision line
    keeps its value estimate and its blueprint when the other heads are cut off."""
    config = {
        "task": "digits",
        "command": "compare",
        "controller_names": ["learned-deterministic (a)", "heuristic", "learned-deterministic (b)"],
        "episode_seeds": [1],
        "run": {"envs": 1},
        "env": {"max_epochs": 2},
    }
    heads = ("op", "slot", "blueprint", "style", "tempo", "alpha_target", "alpha_speed", "alpha_curve")

    def decision(name: str, entropy: float) -> dict[str, Any]:
        detail = {"choice": "X", "probability": 0.5, "entropy": entropy}
        return {"event": "decision", "controller": name, "episode": 0, "epoch": 0, "op": "GERMINATE", "slot": 0,
                "blueprint": "conv_small",
                "heads": {h: {**detail, "choice": "conv_small" if h == "blueprint" else "X"} for h in heads},
                "value": -0.25}  # fmt: skip

    events = [
        decision("learned-deterministic (a)", 0.9),
        {"event": "decision", "controller": "heuristic", "episode": 0, "epoch": 1, "op": "GERMINATE", "slot": 1,
         "blueprint": "conv_light", "rule": "germinate_on_plateau", "signals": {}},
        decision("learned-deterministic (b)", 0.1),
        decision("learned-deterministic (b)", 0.2),
    ]  # fmt: skip
    text = frame(RunWatcher(run_dir(tmp_path, config, events)), width=200)
    assert "heads (learned-deterministic (b) decisions)" in text
    assert "0.15" in text and "0.90" not in text and "0.40" not in text  # b's own mean, not pooled with a's
    assert "heuristic #0 epoch 1: GERMINATE r0c1 conv_light by rule germinate_on_plateau" in text
    assert "learned-deterministic (b) #0 epoch 0: GERMINATE r0c0 p=0.50 V=-0.25 [blueprint conv_small 0.50" in text


# ------------------------------------------------------------------------------------------- the loop
class ScriptedKeys:
    """Presses nothing for ``idle`` waits (appending ``events`` to the log on the first), then ``key``."""

    def __init__(self, log: Path, events: list[dict[str, Any]], idle: int, key: str | None) -> None:
        self.log, self.events, self.idle, self.key = log, events, idle, key
        self.waits = 0

    def wait(self, timeout: float) -> str | None:
        self.waits += 1
        if self.waits == 1:
            with self.log.open("a") as handle:
                handle.write("".join(map(line, self.events)))
        if self.waits <= self.idle:
            return None
        if self.key is None:
            raise KeyboardInterrupt
        return self.key


@pytest.mark.parametrize("key", ["q", None], ids=["q", "ctrl-c"])
def test_the_live_view_follows_the_log_and_quits_cleanly(tmp_path: Path, key: str | None) -> None:
    run = run_dir(tmp_path, PPO_CONFIG, [epoch(0, 0, 1)])
    watcher = RunWatcher(run)
    keys = ScriptedKeys(run / "events.jsonl", [epoch(0, 1, 1), round_event(0, 30.0)], idle=2, key=key)
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=True)
    assert follow(watcher, console, keys, interval=0.01) == 0
    assert keys.waits == 3
    assert watcher.state.steps_done == 2 and len(watcher.state.rounds) == 1  # the appended events were read
    output = console.file
    assert isinstance(output, io.StringIO)
    assert output.getvalue().endswith("\x1b[?1049l")  # the alternate screen is left: the terminal is restored


def test_once_prints_one_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path, PPO_CONFIG, [epoch(0, 0, 1), round_event(0, 30.0)])
    assert main(["watch", str(run), "--once"]) == 0
    assert "round 1 of 3 done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nowhere"], "nowhere is not an Esper run directory (no config.json)"),
        (["RUN", "--interval", "0"], "--interval must be > 0 seconds, got 0.0"),
    ],
)
def test_bad_watch_arguments_are_one_line(
    arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_dir(tmp_path, PPO_CONFIG, [])
    arguments = [str(run) if a == "RUN" else str(tmp_path / a) if a == "nowhere" else a for a in arguments]
    assert main(["watch", *arguments]) == 2
    assert capsys.readouterr().err == f"esper: error: {message.replace('nowhere', str(tmp_path / 'nowhere'))}\n"


def test_a_directory_without_an_event_log_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_dir(tmp_path, PPO_CONFIG, [])
    (run / "events.jsonl").unlink()
    assert main(["watch", str(run), "--once"]) == 2
    message = f"{run} is not an Esper run directory (no events.jsonl beside its config.json)"
    assert capsys.readouterr().err == f"esper: error: {message}\n"


def test_a_log_that_holds_no_event_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes that are not JSON lines (a wrong file, or a log overwritten) are an error, not an empty run; a log
    with damaged lines among real events is still drawn (they are counted in the header)."""
    run = run_dir(tmp_path, PPO_CONFIG, [])
    (run / "events.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff garbage\nnot json either\n")
    assert main(["watch", str(run), "--once"]) == 2
    log = run / "events.jsonl"
    assert capsys.readouterr().err == f"esper: error: {log} is not an Esper event log (4 line(s), none a JSON object)\n"
    log.write_text("not json\n" + line(epoch(0, 0, 1)))
    assert main(["watch", str(run), "--once"]) == 0
    assert "1 damaged line(s) in the log skipped" in capsys.readouterr().out


@pytest.mark.subprocess
def test_in_a_real_terminal_q_quits_and_the_terminal_is_restored(tmp_path: Path) -> None:
    """The command under a pseudo-terminal (what an SSH session gives it): it draws on the alternate screen,
    reads single keys without Enter, and on q leaves the alternate screen with the terminal's modes restored."""
    run = run_dir(tmp_path, PPO_CONFIG, [epoch(0, 0, 1), round_event(0, 30.0)])
    leader, follower = pty.openpty()
    modes = termios.tcgetattr(follower)
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "esper.app.cli", "watch", str(run), "--interval", "0.2"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    output = b""
    try:
        deadline = time.monotonic() + 120
        while b"round 1 of 3 done" not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                output += os.read(leader, 65536)
        assert b"round 1 of 3 done" in output, output[-2000:]
        os.write(leader, b"q")
        assert process.wait(timeout=60) == 0
        while select.select([leader], [], [], 0.2)[0]:
            try:
                output += os.read(leader, 65536)
            except OSError:  # the other side is closed
                break
        assert termios.tcgetattr(follower) == modes  # cbreak mode undone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
        os.close(follower)
    assert b"\x1b[?1049h" in output and b"\x1b[?1049l" in output  # entered and left the alternate screen
