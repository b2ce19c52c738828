"""The summary, results and plots of a PPO run, built from its event log alone.

The same code writes them at the end of a training session and in ``esper report``, so a run killed after its
last checkpoint but before its summary loses nothing: everything the summary shows is in ``events.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.app.blueprint_outcomes import blueprint_outcomes, prune_rules
from esper.app.evaluation import episode_row
from esper.app.plots import learning_curves, lifecycle_timeline
from esper.app.reporting import (
    BLUEPRINTS_NOTE,
    accuracy_note,
    blueprints_table,
    episodes_table,
    markdown_table,
    short_metric,
)
from esper.app.run_config import RunConfig
from esper.app.run_directory import read_events, write_results, write_summary
from esper.leyline import HEAD_ORDER
from esper.simic.envs.episode_records import EpisodeSummary

#: ``results.json`` ``status`` of a run with fewer rounds than asked, by the reason logged when it stopped.
COMPLETE = "complete"
TIME_BUDGET_REACHED = "time_budget_reached"
INCOMPLETE = "incomplete"
STOP_EVENT = "stopped"
VALIDATION_EVENT = "validation"


def write_ppo_report(run_dir: Path, config: RunConfig, data: dict[str, Any]) -> bool:
    """Write ``results.json``, ``summary.md`` and the plots; False (nothing written) if no round is logged.
    ``data`` is the run's split record (``config.json``'s ``data``)."""
    events = read_events(run_dir)
    rounds, stop_reason = _logged_rounds(events)
    if not rounds:
        return False
    validations_by_round = {e["round"]: e for e in events if e.get("event") == VALIDATION_EVENT}
    validations = [validations_by_round[k] for k in sorted(validations_by_round)]
    last = rounds[-1]["round"]
    last_episodes = _episodes_of_round(events, last)
    status = _status(len(rounds), config.run.rounds, stop_reason)
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    learning_curves(rounds, validations, plots / "learning_curves.png", config.preset.metric)
    sections = _round_sections(run_dir, config, data, rounds, validations, status)
    outcomes = _training_outcomes(events, config, {r["round"] for r in rounds})
    sections += [
        "## Blueprints over every training episode",
        BLUEPRINTS_NOTE,
        blueprints_table({"ppo": outcomes}),
    ]
    results: dict[str, Any] = {
        "task": config.task,
        "data": data,
        "status": status,
        "rounds_planned": config.run.rounds,
        "rounds": rounds,
        "validations": validations,
        "blueprints": outcomes,
    }
    if last_episodes:
        rows = [episode_row(e) for e in last_episodes]
        lifecycle_timeline(
            last_episodes,
            config.preset.slots.names(),
            plots / "lifecycle.png",
            f"round {last} episodes (training seeds)",
            short_metric(config.preset.metric),
        )
        sections += [
            f"## Episodes of the last round ({last})",
            episodes_table(rows, metric=config.preset.metric),
            "![lifecycle](plots/lifecycle.png)",
        ]
        results["last_round_episodes"] = rows
    write_results(run_dir, results)
    write_summary(run_dir, "\n\n".join(sections) + "\n")
    return True


def _logged_rounds(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The ``round`` events in round order (a round trained again after a resume: the latest wins), and the
    reason of a stop logged after the last of them (None if the run did not stop early since)."""
    rounds_by_index: dict[int, dict[str, Any]] = {}
    stop_reason: str | None = None
    for event in events:
        if event.get("event") == "round":
            rounds_by_index[event["round"]] = event
            stop_reason = None
        elif event.get("event") == STOP_EVENT:
            stop_reason = event.get("reason")
    return [rounds_by_index[k] for k in sorted(rounds_by_index)], stop_reason


def _episodes_of_round(events: list[dict[str, Any]], round_index: int) -> list[EpisodeSummary]:
    """The episode summaries logged in round ``round_index``, in episode order (the latest of a repeated round)."""
    episodes = {e["env"]: e for e in events if e.get("event") == "episode" and e.get("round") == round_index}
    return [EpisodeSummary.from_dict(episodes[k]) for k in sorted(episodes)]


def _training_outcomes(events: list[dict[str, Any]], config: RunConfig, rounds: set[int]) -> dict[str, dict[str, Any]]:
    """Blueprint outcomes over the training episodes of the logged rounds (the latest of a repeated round), with
    the prune rules of any recorded decisions."""
    episodes: dict[tuple[int, int], dict[str, Any]] = {}
    decisions: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in events:
        if event.get("round") not in rounds:
            continue
        key = (int(event["round"]), int(event["env"])) if "env" in event else None
        if key is not None and event.get("event") == "episode":
            episodes[key] = event
        elif key is not None and event.get("event") == "decision":
            decisions.setdefault(key, []).append(event)
    keys = sorted(episodes)
    slots = config.preset.slots.names()
    return blueprint_outcomes(
        [EpisodeSummary.from_dict(episodes[k]) for k in keys], [prune_rules(decisions.get(k, []), slots) for k in keys]
    )


def _status(rounds_logged: int, rounds_planned: int, stop_reason: str | None) -> str:
    if rounds_logged >= rounds_planned:
        return COMPLETE
    return TIME_BUDGET_REACHED if stop_reason == TIME_BUDGET_REACHED else INCOMPLETE


def _round_sections(
    run_dir: Path,
    config: RunConfig,
    data: dict[str, Any],
    rounds: list[dict[str, Any]],
    validations: list[dict[str, Any]],
    status: str,
) -> list[str]:
    """The summary up to the last round's episodes: the run, whether it is complete, its curves, rounds,
    validations and the last update's per-head health."""
    sections = [
        f"# PPO on `{config.task}`",
        f"{len(rounds)} rounds x {config.run.envs} envs x {config.episode_epochs} epochs, run seed "
        f"{config.run.seed}, policy `{config.policy.kind}`.",
        accuracy_note(data),
    ]
    if status != COMPLETE:
        why = "stopped by its time budget" if status == TIME_BUDGET_REACHED else "not finished"
        sections.append(
            f"**Incomplete**: {why} after {len(rounds)} of {config.run.rounds} rounds; "
            f"`esper train ppo --resume {run_dir}` continues it."
        )
    return [
        *sections,
        "## Learning curves\n\n![learning curves](plots/learning_curves.png)",
        "## Rounds",
        _rounds_table(rounds, short_metric(config.preset.metric)),
        "## Deterministic validation",
        _validation_text(config, validations, rounds),
        "## Per-head health in the last round",
        "Normalized entropy over the steps where the head mattered for the op and had more than one allowed "
        "action (a forced choice has entropy 0 by definition).",
        _heads_table(rounds[-1]["update"]),
    ]


def _validation_text(config: RunConfig, validations: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> str:
    """What the validation is, and one row per validation with the per-head entropy of that round's update."""
    intro = (
        f"The argmax policy on {config.run.validation_episodes} training-range selection seeds (never evaluation "
        f"seeds; the same at every validation), after every {config.run.validate_every} rounds and after the last; "
        f"the score is the mean final validation {config.preset.metric}. `checkpoints/best.pt` holds the policy of "
        "the best score (the first one on a tie), `checkpoints/latest.pt` the last update's."
    )
    if not validations:
        return intro + "\n\nNo validation has run yet."
    updates = {r["round"]: r["update"] for r in rounds}
    table = markdown_table(
        [
            "round",
            f"argmax val {short_metric(config.preset.metric)} %",
            "params added",
            "best so far %",
            *[f"{h.value} entropy" for h in HEAD_ORDER],
        ],
        [
            [
                f"{v['round']}{' (best)' if v['new_best'] else ''}",
                f"{v['mean_val_accuracy']:.2f}",
                f"{v['mean_params_added']:.0f}",
                _fmt(v["best_val_accuracy"]),
                *[_fmt(updates.get(v["round"], {}).get(f"heads.{h.value}.entropy")) for h in HEAD_ORDER],
            ]
            for v in validations
        ],
    )
    return intro + "\n\n" + table


def _rounds_table(rounds: list[dict[str, Any]], metric: str) -> str:
    return markdown_table(
        [
            "round",
            f"mean test {metric} %",
            f"mean val {metric} %",
            "min val",
            "max val",
            "mean return",
            "params added",
            "explained var",
            "approx KL",
            "clip fraction",
            "op entropy",
            "early stop",
        ],
        [
            [
                r["round"],
                f"{r['mean_test_accuracy']:.2f}",
                f"{r['mean_val_accuracy']:.2f}",
                f"{r['min_val_accuracy']:.1f}",
                f"{r['max_val_accuracy']:.1f}",
                f"{r['mean_return']:.3f}",
                f"{r['mean_params_added']:.0f}",
                _fmt(r["update"].get("explained_variance")),
                _fmt(r["update"].get("approx_kl"), 4),
                _fmt(r["update"].get("clip_fraction")),
                _fmt(r["update"].get("heads.op.entropy")),
                "yes" if r["update"].get("early_stopped") else "",
            ]
            for r in rounds
        ],
    )


def _heads_table(update: dict[str, Any]) -> str:
    return markdown_table(
        ["head", "normalized entropy", "KL", "clip fraction", "share of steps it mattered", "with a choice"],
        [
            [
                head.value,
                _fmt(update.get(f"heads.{head.value}.entropy")),
                _fmt(update.get(f"heads.{head.value}.approx_kl"), 4),
                _fmt(update.get(f"heads.{head.value}.clip_fraction")),
                _fmt(update.get(f"heads.{head.value}.relevant_fraction")),
                _fmt(update.get(f"heads.{head.value}.choice_fraction")),
            ]
            for head in HEAD_ORDER
        ],
    )


def _fmt(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"
