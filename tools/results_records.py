"""What the results pages share: records copied out of run directories, and the tables rendered from them.

``tools/digits_results.py`` and ``tools/pydoc_results.py`` each build one page of docs/results/ from records
kept beside it; both pages are rendered from those records alone, so the suite can check that a page is exactly
what its records give. ``metric`` below is the short name of the task's metric as table headings write it
(``acc`` on digits, ``next-token acc`` on the byte-level tasks).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from esper.app.reporting import markdown_table
from esper.app.statistics import Interval, bootstrap_mean, bootstrap_ratio, paired_difference

_ROUND_COLUMNS = ("mean_test_accuracy", "mean_val_accuracy", "mean_params_added", "mean_return")


# ------------------------------------------------------------------------------------------------ records
def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def run_code(run: Path) -> dict[str, Any] | None:
    """The commit a run was made at, as its config.json records it."""
    code: dict[str, Any] | None = read_json(run / "config.json").get("code")
    return code


def events_of(run: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [event for line in lines if (event := json.loads(line)).get("event") == kind]


def best_validation(training: dict[str, Any]) -> dict[str, Any]:
    """The validation whose policy is the run's ``checkpoints/best.pt``."""
    best: dict[str, Any] = max(training["validations"], key=lambda v: v["mean_val_accuracy"])
    return best


def training_record(run: Path, wall: float | None) -> dict[str, Any]:
    results = read_json(run / "results.json")
    config = read_json(run / "config.json")
    return {
        "code": config.get("code"),
        "config": {key: config[key] for key in ("run", "env", "reward", "gates", "ppo", "warm_start", "policy")},
        "data": config["data"],
        "status": results["status"],
        "warm_start": events_of(run, "warm_start"),
        "rounds": results["rounds"],
        "validations": results["validations"],
        "wall_seconds": wall,
    }


def germinations(run: Path) -> dict[str, list[dict[str, Any]]]:
    """Per controller (its event label), every seed germinated: slot, blueprint and the epoch of the decision."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events_of(run, "epoch"):
        for change in event["lifecycle"]:
            if change["to"] == "GERMINATED":
                found.setdefault(event["controller"], []).append(
                    {"slot": change["slot"], "blueprint": change["blueprint"], "epoch": event["epoch"]}
                )
    return found


def comparison_record(run: Path, given_as: str, wall: float | None) -> dict[str, Any]:
    results = read_json(run / "results.json")
    config = read_json(run / "config.json")
    return {
        "code": config.get("code"),
        "controllers": config["controllers"],  # labels, in the order the table shows them
        "given_as": given_as,  # the --controllers argument
        "seed": config["run"]["seed"],
        "seeds": results["seeds"],
        "data": results["data"],
        "episodes": results["episodes"],
        "germinations": germinations(run),
        "wall_seconds": wall,
    }


def wall_entry(text: str) -> tuple[str, float]:
    """``NAME=SECONDS`` of a ``--wall`` flag."""
    name, _, seconds = text.partition("=")
    return name, float(seconds)


# ------------------------------------------------------------------------------------------------- render
def values_of(episodes: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(e[key]) for e in episodes]


def minutes(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds / 60:.1f} min"


def commit_text(code: dict[str, Any] | None) -> str:
    if code is None:
        return "not recorded"
    return str(code["commit"])[:12] + (" (with local changes)" if code["modified"] else "")


def interval_text(interval: Interval | None, digits: int = 2) -> str:
    return "n/a" if interval is None else interval.format(digits)


def controller_rows(
    comparison: dict[str, Any], against: Sequence[str], static: list[float] | None, per_1k_digits: int = 0
) -> list[list[object]]:
    """One row per controller: test and validation metric, parameters, gain per 1,000 parameters over the static
    host (to ``per_1k_digits`` decimals), and the paired test difference against each controller of ``against``."""
    rows: list[list[object]] = []
    episodes = comparison["episodes"]
    for label in comparison["controllers"]:
        mine = episodes[label]
        test = values_of(mine, "test_accuracy")
        params = values_of(mine, "params_added")
        per_1k = None
        if static is not None:
            per_1k = bootstrap_ratio([t - s for t, s in zip(test, static, strict=True)], [p / 1000 for p in params])
        row: list[object] = [
            label,
            bootstrap_mean(test).format(2),
            bootstrap_mean(values_of(mine, "val_accuracy")).format(2),
            bootstrap_mean(params).format(0),
            interval_text(per_1k, per_1k_digits),
        ]
        for other in against:
            theirs = values_of(episodes[other][: len(mine)], "test_accuracy")
            row.append("" if other == label else paired_difference(test, theirs).format(2))
        rows.append(row)
    return rows


def paired(comparison: dict[str, Any], label: str, other: str) -> Interval:
    """Test metric of ``label`` minus ``other``, paired over the comparison's episodes."""
    episodes = comparison["episodes"]
    return paired_difference(values_of(episodes[label], "test_accuracy"), values_of(episodes[other], "test_accuracy"))


def rounds_table(training: dict[str, Any], every: int, metric: str) -> str:
    rounds = training["rounds"]
    shown = [r for r in rounds if r["round"] % every == 0 or r["round"] == rounds[-1]["round"]]
    return markdown_table(
        [
            "round",
            f"mean test {metric} %",
            f"mean val {metric} %",
            "params added",
            "mean return",
            "op entropy",
            "approx KL",
        ],
        [
            [
                r["round"],
                *(f"{r[key]:.2f}" for key in _ROUND_COLUMNS),
                f"{r['update']['heads.op.entropy']:.2f}",
                f"{r['update']['approx_kl']:.4f}",
            ]
            for r in shown
        ],
    )


def validations_table(training: dict[str, Any], metric: str) -> str:
    return markdown_table(
        ["after round", f"argmax val {metric} % (selection seeds)", "params added", "new best"],
        [
            [
                v["round"],
                f"{v['mean_val_accuracy']:.2f}",
                f"{v['mean_params_added']:.0f}",
                "yes" if v["new_best"] else "",
            ]
            for v in training["validations"]
        ],
    )


def warm_start_text(training: dict[str, Any], metric: str) -> str:
    """The warm start in a sentence; ``metric`` is the full name here (``accuracy``)."""
    (event,) = training["warm_start"]
    return (
        f"Warm start: `{event['demonstrator']}` played {event['episodes']} training-range episodes "
        f"({event['transitions']:,} transitions, mean final validation {metric} "
        f"{event['demonstrator_mean_val_accuracy']:.2f} %); {event['epochs']} epochs of behaviour cloning raised the "
        f"policy's mean probability of the demonstrated actions from {event['initial_action_probability']:.2f} to "
        f"{event['final_action_probability']:.2f}."
    )


def run_dir(label: str) -> str:
    """``runs/NAME`` of a compare label such as ``learned-deterministic (NAME)``."""
    return "runs/" + label.partition("(")[2].rstrip(")")


def seed_block(seeds: Sequence[int]) -> str:
    lines = [" ".join(str(s) for s in seeds[i : i + 8]) for i in range(0, len(seeds), 8)]
    return "```\n" + "\n".join(lines) + "\n```"


def growth_table(comparison: dict[str, Any], labels: dict[str, str]) -> str:
    """What each controller grows where, and when: germinations per slot and blueprint over the episodes."""
    rows: list[list[object]] = []
    episodes = len(comparison["seeds"])
    for shown, event_label in labels.items():
        groups: dict[tuple[str, str], list[int]] = {}
        for seed in comparison["germinations"].get(event_label, []):
            groups.setdefault((seed["slot"], seed["blueprint"]), []).append(seed["epoch"])
        for (slot, blueprint), epochs in sorted(groups.items()):
            rows.append([shown, slot, blueprint, f"{len(epochs)} / {episodes}", f"{sum(epochs) / len(epochs):.1f}"])
    return markdown_table(["controller", "slot", "blueprint", "germinated in (episodes)", "mean epoch"], rows)


def pick_table(pick: dict[str, Any], metric: str) -> str:
    return markdown_table(
        ["schedule", f"final val {metric} % (training-range seeds)", "params added", "chosen"],
        [
            [
                label,
                Interval(**values["val_accuracy"]).format(2),
                Interval(**values["params_added"]).format(0),
                "yes" if label == pick["best"] else "",
            ]
            for label, values in pick["schedules"].items()
        ],
    )


def training_section(training: dict[str, Any], records: str, metric: str) -> str:
    """The "Training" section: learning curves (``records``/learning_curves.png), a row per 5 rounds and the
    deterministic validations."""
    return f"""## Training

![learning curves]({records}/learning_curves.png)

{rounds_table(training, 5, metric)}

Deterministic validation (the argmax policy on the run's selection seeds; the best score's policy is
`checkpoints/best.pt`):

{validations_table(training, metric)}
"""


# ------------------------------------------------------------------------------------------------ command
def page_command(
    argv: Sequence[str] | None,
    description: str,
    records: str,
    add_collect_arguments: Callable[[argparse.ArgumentParser], None],
    collect: Callable[[argparse.Namespace], None],
    render: Callable[[], Path],
) -> int:
    """``collect`` (the page's own run arguments, then ``--note`` and ``--wall``) or ``render``, for the page whose
    records are in docs/results/``records``/; ``render`` returns the page it wrote."""
    parser = argparse.ArgumentParser(description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect", help=f"copy the runs' records into docs/results/{records}/, then render")
    add_collect_arguments(gather)
    gather.add_argument("--note", action="append", default=[], help="a paragraph under the results table")
    gather.add_argument("--wall", action="append", default=[], help="NAME=SECONDS of wall time, as measured")
    commands.add_parser("render", help=f"write the page from docs/results/{records}/")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args)
    print(f"wrote {render().relative_to(Path(__file__).resolve().parent.parent)}")
    return 0
