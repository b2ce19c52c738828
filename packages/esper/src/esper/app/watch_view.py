"""The screen of ``esper watch``, drawn with rich from a ``RunState``: progress, curves, slot lifecycles, per-head
entropy and KL, the latest decisions. Plain characters and a few colours, so it reads the same over SSH, in a
terminal without colour and in a text capture."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esper.app.watch_state import EpisodeTrack, RunState
from esper.leyline import HEAD_ORDER

SPARK = "▁▂▃▄▅▆▇█"
CURVE_WIDTH = 48
STRIP_WIDTH = 40
#: One character per epoch and slot, and its colour.
STAGE_MARKS: dict[str, tuple[str, str]] = {
    "DORMANT": ("·", "dim"),
    "GERMINATED": ("G", "cyan"),
    "TRAINING": ("T", "blue"),
    "BLENDING": ("B", "magenta"),
    "HOLDING": ("H", "yellow"),
    "FOSSILIZED": ("F", "bold green"),
    "PRUNED": ("x", "red"),
    "EMBARGOED": ("e", "red"),
    "RESETTING": ("r", "red"),
}


def render(state: RunState, title: str, elapsed: float, damaged_lines: int) -> RenderableType:
    """One frame. ``elapsed``: seconds the run has been writing (for the time left of episode runs)."""
    parts: list[RenderableType] = [_header(state, title, elapsed, damaged_lines), _curves(state)]
    if state.tracks:
        parts.append(_lifecycles(state))
    parts.append(_heads_and_decisions(state))
    return Group(*parts)


def sparkline(values: Sequence[float], width: int = CURVE_WIDTH) -> str:
    """The last ``width`` values as bars scaled between their minimum and maximum."""
    shown = list(values)[-width:]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low
    return "".join(SPARK[0 if span == 0 else round((v - low) / span * (len(SPARK) - 1))] for v in shown)


def duration(seconds: float) -> str:
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _header(state: RunState, title: str, elapsed: float, damaged_lines: int) -> Panel:
    if state.is_ppo:
        done = state.rounds[-1]["round"] + 1 if state.rounds else 0
        where = f"round {done} of {state.rounds_planned} done"
        if not state.finished and state.group is not None:
            where += f", round {state.group} running"
    else:
        where = f"{state.episodes_done} of {state.steps_planned // state.episode_epochs} episodes done"
    planned = max(state.steps_planned, 1)
    progress = f"{min(state.steps_done, planned) / planned:.0%} of steps"
    left = state.seconds_left(elapsed)
    if state.stopped is not None:
        status = f"stopped ({state.stopped})"
    elif state.finished:
        status = "finished"
    else:
        status = "running, " + ("time left unknown yet" if left is None else f"about {duration(left)} left")
    lines = [
        Text(f"{state.command} on {state.config.get('task', '?')}", style="bold"),
        Text(f"{where} · {progress} · {status}"),
    ]
    if damaged_lines:
        lines.append(Text(f"{damaged_lines} damaged line(s) in the log skipped", style="yellow"))
    return Panel(Group(*lines), title=title, title_align="left")


def _curve_row(table: Table, name: str, values: Sequence[float], digits: int = 2) -> None:
    if values:
        last = f"{values[-1]:.{digits}f}"
        span = f"{min(values):.{digits}f} .. {max(values):.{digits}f}"
        table.add_row(name, sparkline(values), last, span)


def _curves(state: RunState) -> Panel:
    table = Table.grid(padding=(0, 2))
    for column in ("", "", "last", "range"):
        table.add_column(column)
    if state.is_ppo:
        metric = state.metric
        _curve_row(table, f"test {metric} % (round mean)", [float(r["mean_test_accuracy"]) for r in state.rounds])
        _curve_row(table, f"val {metric} % (round mean)", [float(r["mean_val_accuracy"]) for r in state.rounds])
        _curve_row(table, "return (round mean)", [float(r["mean_return"]) for r in state.rounds], 3)
        _curve_row(table, "argmax validation %", [float(v["mean_val_accuracy"]) for v in state.validations])
        title = "curves, one point per round"
    else:
        for name, results in state.controllers.items():
            _curve_row(table, f"{name} test {state.metric} %", results.test_accuracy)
            _curve_row(table, f"{name} return", results.returns, 3)
        title = "curves, one point per finished episode"
    if not table.rows:
        return Panel(Text("no finished round or episode yet", style="dim"), title=title, title_align="left")
    return Panel(table, title=title, title_align="left")


def _strip(history: Sequence[str]) -> Text:
    text = Text()
    for stage in history:
        mark, style = STAGE_MARKS.get(stage, ("?", ""))
        text.append(mark, style=style)
    return text


def _lifecycles(state: RunState) -> Panel:
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("slot", no_wrap=True)
    table.add_column("stage by epoch", no_wrap=True, overflow="crop")
    table.add_column(f"val {state.metric}", justify="right", no_wrap=True)
    table.add_column("last action", no_wrap=True)
    tracks: list[EpisodeTrack] = state.shown_tracks()
    for track in tracks:
        accuracy = "" if track.val_accuracy is None else f"{track.val_accuracy:.1f}"
        action = "done" if track.finished else track.last_op
        slots = list(track.stages)
        strips = Text("\n").join(_strip(track.stages[slot][-STRIP_WIDTH:]) for slot in slots)
        table.add_row(track.label, "\n".join(slots), strips, accuracy, action)
    group = f"round {state.group}" if state.is_ppo else f"{state.group}"
    legend = "  ".join(f"{mark} {stage.lower()}" for stage, (mark, _) in STAGE_MARKS.items())
    title = f"slot lifecycles, newest {STRIP_WIDTH} epochs ({group})"
    return Panel(Group(table, Text(legend, style="dim")), title=title, title_align="left")


def _heads_and_decisions(state: RunState) -> Table:
    layout = Table.grid(padding=(0, 1), expand=True)
    layout.add_column(ratio=2, min_width=30)
    layout.add_column(ratio=3)
    layout.add_row(_heads(state), _decisions(state))
    return layout


def _heads(state: RunState) -> Panel:
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("head", no_wrap=True)
    table.add_column("entropy", justify="right", no_wrap=True)
    table.add_column("KL", justify="right", no_wrap=True)
    if state.is_ppo and state.rounds:
        update: dict[str, Any] = state.rounds[-1].get("update", {})
        for head in HEAD_ORDER:
            table.add_row(
                head.value,
                _number(update.get(f"heads.{head.value}.entropy")),
                _number(update.get(f"heads.{head.value}.approx_kl"), 4),
            )
        table.add_row("all", "", _number(update.get("approx_kl"), 4))
        title = f"heads (round {state.rounds[-1]['round']})"
    else:
        recorded = state.head_entropy()
        if recorded is None:
            return Panel(Text("no policy decisions recorded", style="dim"), title="heads", title_align="left")
        name, entropy = recorded
        for head in HEAD_ORDER:
            if head.value in entropy:
                table.add_row(head.value, _number(entropy[head.value]), "n/a")
        title = f"heads ({name} decisions)"
    return Panel(table, title=title, title_align="left")


def _decisions(state: RunState) -> Panel:
    if not state.decisions:
        return Panel(
            Text("no decisions recorded (see --record-decisions)", style="dim"),
            title="latest decisions",
            title_align="left",
        )
    lines = [decision_line(event, state.slots) for event in state.decisions]
    return Panel(Group(*lines), title="latest decisions", title_align="left")


def decision_line(event: dict[str, Any], slots: Sequence[str]) -> Text:
    """One decision or host signal, on one line."""
    if "round" in event:
        where = f"r{event['round']} env {event.get('env')}"
    else:
        where = f"{event.get('controller')} #{event.get('episode')}"
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{where} epoch {event.get('epoch')}: ", style="dim")
    if event.get("event") == "host":
        line.append(f"host {event.get('signal')}", style="italic")
        return line
    slot = event.get("slot")
    op = str(event.get("op"))
    slot_name = slots[slot] if isinstance(slot, int) and 0 <= slot < len(slots) else slot
    line.append(op if op == "WAIT" or slot_name is None else f"{op} {slot_name}", style="bold")
    if "rule" in event:
        if "blueprint" in event:
            line.append(f" {event['blueprint']}", style="bold")
        line.append(f" by rule {event['rule']}")
        return line
    heads: dict[str, dict[str, Any]] = event.get("heads", {})
    op_head = heads.get("op")
    if op_head is not None:
        line.append(f" p={op_head.get('probability', 0.0):.2f}")
    if "value" in event:
        line.append(f" V={event['value']:.2f}")
    others = [  # the head order (blueprint first), so a cut-off line keeps the choices that say the most
        f"{head.value} {heads[head.value].get('choice')} {heads[head.value].get('probability', 0.0):.2f}"
        for head in HEAD_ORDER
        if head.value in heads and head.value not in ("op", "slot")
    ]
    if others:
        line.append(" [" + ", ".join(others) + "]", style="dim")
    return line


def _number(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"
