"""Build docs/results/digits.md, the learned controller against every fixed schedule, from the runs behind it.

    uv run python tools/digits_results.py collect --pick P --train T --prefix R --other-train O --compare C \
        --compare-more M --wall pick=SECONDS --wall train=SECONDS ...
    uv run python tools/digits_results.py render

``collect`` copies what the page needs out of the run directories into docs/results/digits/ (JSON records and
the plots) and records the commit each run was produced at; ``render`` writes the page from those files alone. The
suite checks that the committed page is exactly what ``render`` makes of the committed records, and reruns the
first round of the training command against them (tests/test_results_digits.py), so the page, its data and the
code cannot drift apart unnoticed.

The page's claims are computed, never typed in: which of the two training runs (the LSTM and the feed-forward policy)
is the headline (the better deterministic validation on training-range selection seeds; evaluation seeds play no
part), the paired differences of the learned controller against the best fixed schedule and the heuristic, and
whether each target of the learned-controller issue is met.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from esper.app.reporting import markdown_table
from esper.app.statistics import Interval, bootstrap_mean, bootstrap_ratio, paired_difference
from esper.simic.atomic_files import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
DATA = RESULTS / "digits"
PAGE = RESULTS / "digits.md"
#: The margin over the heuristic the issue asks of the learned controller, in points of test accuracy.
HEURISTIC_MARGIN = 15.0
_ROUND_COLUMNS = ("mean_test_accuracy", "mean_val_accuracy", "mean_params_added", "mean_return")


# ------------------------------------------------------------------------------------------------ collect
def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _code(run: Path) -> dict[str, Any] | None:
    code: dict[str, Any] | None = _read(run / "config.json").get("code")
    return code


def _events(run: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [event for line in lines if (event := json.loads(line)).get("event") == kind]


def best_validation(training: dict[str, Any]) -> dict[str, Any]:
    """The validation whose policy is the run's ``checkpoints/best.pt``."""
    best: dict[str, Any] = max(training["validations"], key=lambda v: v["mean_val_accuracy"])
    return best


def training_record(run: Path, wall: float | None) -> dict[str, Any]:
    results = _read(run / "results.json")
    config = _read(run / "config.json")
    return {
        "code": config.get("code"),
        "config": {key: config[key] for key in ("run", "env", "reward", "gates", "ppo", "warm_start", "policy")},
        "data": config["data"],
        "status": results["status"],
        "warm_start": _events(run, "warm_start"),
        "rounds": results["rounds"],
        "validations": results["validations"],
        "wall_seconds": wall,
    }


def germinations(run: Path) -> dict[str, list[dict[str, Any]]]:
    """Per controller (its event label), every seed germinated: slot, blueprint and the epoch of the decision."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in _events(run, "epoch"):
        for change in event["lifecycle"]:
            if change["to"] == "GERMINATED":
                found.setdefault(event["controller"], []).append(
                    {"slot": change["slot"], "blueprint": change["blueprint"], "epoch": event["epoch"]}
                )
    return found


def _comparison_record(run: Path, given_as: str, wall: float | None) -> dict[str, Any]:
    results = _read(run / "results.json")
    config = _read(run / "config.json")
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


def collect(args: argparse.Namespace) -> None:
    walls = dict(_wall(text) for text in args.wall)
    DATA.mkdir(parents=True, exist_ok=True)
    pick = _read(args.pick / "results.json")
    write_json_atomic(DATA / "pick.json", {**pick, "code": _code(args.pick), "wall_seconds": walls.get("pick")})
    write_json_atomic(DATA / "training.json", training_record(args.train, walls.get("train")))
    write_json_atomic(DATA / "prefix.json", training_record(args.prefix, walls.get("prefix")))
    write_json_atomic(DATA / "other_training.json", training_record(args.other_train, walls.get("other_train")))
    write_json_atomic(
        DATA / "compare.json", _comparison_record(args.compare, args.compare_controllers, walls.get("compare"))
    )
    write_json_atomic(
        DATA / "compare_more.json",
        _comparison_record(args.compare_more, args.more_controllers, walls.get("compare_more")),
    )
    roles = {
        "learned": args.learned,
        "train_config": args.train_config,
        "other_learned": args.other_learned,
        "other_config": args.other_config,
        "best_schedule": args.best_schedule,
        "notes": args.note,
    }
    write_json_atomic(DATA / "roles.json", roles)
    shutil.copyfile(args.train / "plots" / "learning_curves.png", DATA / "learning_curves.png")
    shutil.copyfile(args.compare / "plots" / "comparison.png", DATA / "comparison.png")
    render()


def _wall(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    return name, float(seconds)


# ------------------------------------------------------------------------------------------------- render
def _values(episodes: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(e[key]) for e in episodes]


def _minutes(seconds: float | None) -> str:
    return "not measured" if seconds is None else f"{seconds / 60:.1f} min"


def _commit(code: dict[str, Any] | None) -> str:
    if code is None:
        return "not recorded"
    return str(code["commit"])[:12] + (" (with local changes)" if code["modified"] else "")


def _fmt(interval: Interval | None, digits: int = 2) -> str:
    return "n/a" if interval is None else interval.format(digits)


def _controller_rows(
    comparison: dict[str, Any], against: Sequence[str], static: list[float] | None
) -> list[list[object]]:
    """One row per controller: test and validation accuracy, parameters, gain per 1,000 parameters over the static
    host, and the paired test-accuracy difference against each controller of ``against``."""
    rows: list[list[object]] = []
    episodes = comparison["episodes"]
    for label in comparison["controllers"]:
        mine = episodes[label]
        test = _values(mine, "test_accuracy")
        params = _values(mine, "params_added")
        per_1k = None
        if static is not None:
            per_1k = bootstrap_ratio([t - s for t, s in zip(test, static, strict=True)], [p / 1000 for p in params])
        row: list[object] = [
            label,
            bootstrap_mean(test).format(2),
            bootstrap_mean(_values(mine, "val_accuracy")).format(2),
            bootstrap_mean(params).format(0),
            _fmt(per_1k, 0),
        ]
        for other in against:
            theirs = _values(episodes[other][: len(mine)], "test_accuracy")
            row.append("" if other == label else paired_difference(test, theirs).format(2))
        rows.append(row)
    return rows


def _paired(comparison: dict[str, Any], label: str, other: str) -> Interval:
    episodes = comparison["episodes"]
    return paired_difference(_values(episodes[label], "test_accuracy"), _values(episodes[other], "test_accuracy"))


def _targets(comparison: dict[str, Any], learned: str, best_schedule: str) -> list[list[object]]:
    versus_schedule = _paired(comparison, learned, best_schedule)
    versus_heuristic = _paired(comparison, learned, "heuristic")
    return [
        [
            f"beats the best fixed schedule ({best_schedule}), paired 95 % interval above 0",
            versus_schedule.format(2),
            "met" if versus_schedule.low > 0 else "**not met**",
        ],
        [
            f"beats the heuristic by at least {HEURISTIC_MARGIN:.0f} pp, paired 95 % interval above 0",
            versus_heuristic.format(2),
            "met" if versus_heuristic.mean >= HEURISTIC_MARGIN and versus_heuristic.low > 0 else "**not met**",
        ],
    ]


def _rounds_table(training: dict[str, Any], every: int) -> str:
    rounds = training["rounds"]
    shown = [r for r in rounds if r["round"] % every == 0 or r["round"] == rounds[-1]["round"]]
    return markdown_table(
        ["round", "mean test acc %", "mean val acc %", "params added", "mean return", "op entropy", "approx KL"],
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


def _validations_table(training: dict[str, Any]) -> str:
    return markdown_table(
        ["after round", "argmax val acc % (selection seeds)", "params added", "new best"],
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


def _warm_start_text(training: dict[str, Any]) -> str:
    (event,) = training["warm_start"]
    return (
        f"Warm start: `{event['demonstrator']}` played {event['episodes']} training-range episodes "
        f"({event['transitions']:,} transitions, mean final validation accuracy "
        f"{event['demonstrator_mean_val_accuracy']:.2f} %); {event['epochs']} epochs of behaviour cloning raised the "
        f"policy's mean probability of the demonstrated actions from {event['initial_action_probability']:.2f} to "
        f"{event['final_action_probability']:.2f}."
    )


def _run_dir(label: str) -> str:
    """``runs/NAME`` of a compare label such as ``learned-deterministic (NAME)``."""
    return "runs/" + label.partition("(")[2].rstrip(")")


def _seed_block(seeds: Sequence[int]) -> str:
    lines = [" ".join(str(s) for s in seeds[i : i + 8]) for i in range(0, len(seeds), 8)]
    return "```\n" + "\n".join(lines) + "\n```"


def _growth_table(comparison: dict[str, Any], labels: dict[str, str]) -> str:
    """What each controller grows where, and when: germinations per slot and blueprint over the episodes."""
    rows: list[list[object]] = []
    episodes = len(comparison["seeds"])
    for shown, event_label in labels.items():
        groups: dict[tuple[str, str], list[int]] = {}
        for seed in comparison["germinations"][event_label]:
            groups.setdefault((seed["slot"], seed["blueprint"]), []).append(seed["epoch"])
        for (slot, blueprint), epochs in sorted(groups.items()):
            rows.append([shown, slot, blueprint, f"{len(epochs)} / {episodes}", f"{sum(epochs) / len(epochs):.1f}"])
    return markdown_table(["controller", "slot", "blueprint", "germinated in (episodes)", "mean epoch"], rows)


def _headline_section(
    roles: dict[str, Any], training: dict[str, Any], other: dict[str, Any], comparison: dict[str, Any]
) -> str:
    """Why the headline run is the headline, and the two policy kinds side by side (the memory ablation)."""
    runs = {
        record["config"]["policy"]["kind"]: (label, config, record)
        for label, config, record in (
            (roles["learned"], roles["train_config"], training),
            (roles["other_learned"], roles["other_config"], other),
        )
    }
    if set(runs) != {"lstm", "mlp"}:
        raise ValueError("the two training runs must be one lstm and one mlp policy")
    if best_validation(other)["mean_val_accuracy"] > best_validation(training)["mean_val_accuracy"]:
        raise ValueError("the headline run must be the one with the better deterministic validation score")
    table = markdown_table(
        ["training run", "policy kind", "best argmax val acc % (selection seeds)", "test acc % (held-out episodes)"],
        [
            [
                f"`{config}`",
                kind,
                f"{best_validation(record)['mean_val_accuracy']:.2f} (after round {best_validation(record)['round']})",
                bootstrap_mean(_values(comparison["episodes"][label], "test_accuracy")).format(2),
            ]
            for kind, (label, config, record) in runs.items()
        ],
    )
    feed_forward_minus_lstm = _paired(comparison, runs["mlp"][0], runs["lstm"][0])
    schedule_blueprint = roles["best_schedule"].partition("(")[2].rstrip(")")
    growth_labels = {
        roles["best_schedule"]: f"schedule:{schedule_blueprint}",
        runs["lstm"][0]: runs["lstm"][0],
        runs["mlp"][0]: runs["mlp"][0],
    }
    return f"""## Which run is the headline, and does the controller need memory?

Two training runs differ only in the policy kind: `lstm` (the recurrent policy) and `mlp` (the same encoder and
heads with a feed-forward layer where the LSTM is, so each decision sees only the current epoch's observation).
The headline is the run whose best deterministic validation on the training-range selection seeds is higher; the
rule was fixed before the feed-forward policy played any evaluation episode, and evaluation seeds play no part in
it.

{table}

Feed-forward minus LSTM, paired on the held-out episodes: **{feed_forward_minus_lstm.format(2)} pp** of test
accuracy. What each grows, slot by slot, on the held-out episodes (from the comparison's lifecycle events):

{_growth_table(comparison, growth_labels)}
"""


def render() -> None:
    write_text_atomic(PAGE, page_text())


def page_text() -> str:
    """The page, from the records in docs/results/digits/ alone."""
    pick = _read(DATA / "pick.json")
    training = _read(DATA / "training.json")
    prefix = _read(DATA / "prefix.json")
    comparison = _read(DATA / "compare.json")
    more = _read(DATA / "compare_more.json")
    other = _read(DATA / "other_training.json")
    roles = _read(DATA / "roles.json")
    learned, best_schedule = roles["learned"], roles["best_schedule"]
    train_config, other_config = roles["train_config"], roles["other_config"]
    notes = "\n\n".join(roles["notes"])
    static = _values(comparison["episodes"]["static"], "test_accuracy")
    against = [best_schedule, "heuristic"]
    header = ["controller", "test acc %", "val acc %", "params added", "gain per 1k params (pp)"]
    main_table = markdown_table(
        [*header, f"vs {best_schedule} (pp)", "vs heuristic (pp)"], _controller_rows(comparison, against, static)
    )
    more_static = _values(comparison["episodes"]["static"][: len(more["seeds"])], "test_accuracy")
    more_with_best = {**more, "episodes": {**more["episodes"], best_schedule: comparison["episodes"][best_schedule]}}
    more_table = markdown_table(
        [*header, f"vs {best_schedule} (pp)"], _controller_rows(more_with_best, [best_schedule], more_static)
    )
    pick_table = markdown_table(
        ["schedule", "final val acc % (training-range seeds)", "params added", "chosen"],
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
    data = comparison["data"]
    sizes = data["sizes"]
    config = training["config"]
    runs = markdown_table(
        ["run", "commit", "wall time (2-core CPU)"],
        [
            ["`esper pick-schedule --episodes 16`", _commit(pick["code"]), _minutes(pick["wall_seconds"])],
            [
                f"`esper train ppo --config {train_config}`",
                _commit(training["code"]),
                _minutes(training["wall_seconds"]),
            ],
            [f"`esper train ppo --config {other_config}`", _commit(other["code"]), _minutes(other["wall_seconds"])],
            ["the same command with `--rounds 1`", _commit(prefix["code"]), _minutes(prefix["wall_seconds"])],
            [
                f"`esper compare` ({len(comparison['seeds'])} episodes)",
                _commit(comparison["code"]),
                _minutes(comparison["wall_seconds"]),
            ],
            [f"`esper compare` ({len(more['seeds'])} episodes)", _commit(more["code"]), _minutes(more["wall_seconds"])],
        ],
    )
    return f"""# The learned controller against every fixed schedule on `digits`

_Generated by `tools/digits_results.py render` from the records in [`digits/`](digits/); do not edit by hand.
Produced at commit `{_commit(training["code"])}` (each run's commit is listed under "Runs")._

## Targets

The learned controller (`{learned}`: the training run's `checkpoints/best.pt`, every head argmax, the way
`esper compare` runs a policy by default) on the {len(comparison["seeds"])} held-out episodes below; paired
differences of final **test** accuracy, 95 % bootstrap intervals.

{markdown_table(["target", "paired difference (pp)", "result"], _targets(comparison, learned, best_schedule))}

## Protocol

- Task `digits` (the embedded default): {data["split"]} ({sizes["train"]:,} / {sizes["validation"]:,} /
  {sizes["test"]:,} images, split seed {data["split_seed"]}), the impaired CNN host, 3 slots,
  {config["env"]["max_epochs"]}-epoch episodes. Validation accuracy drives the episodes (reward, gates,
  controllers); **test accuracy is measured once, at the end of each episode, and nothing ever sees it before.**
- The best fixed schedule was picked by `esper pick-schedule --episodes 16` on 16 training-range selection seeds
  (never evaluation seeds), by mean final validation accuracy (below); the choice is committed as
  [`digits/best_schedule.json`](digits/best_schedule.json).
- Training: `esper train ppo --config {train_config}` (the `{config["policy"]["kind"]}` policy):
  {config["run"]["rounds"]} rounds of {config["run"]["envs"]} envs, run seed {config["run"]["seed"]}, PPO defaults,
  rent weight {config["reward"]["rent_weight"]:g}, a warm start by behaviour cloning from the best schedule,
  and a deterministic validation of the argmax policy every {config["run"]["validate_every"]} rounds on
  {config["run"]["validation_episodes"]} training-range selection seeds that keeps the best policy as
  `checkpoints/best.pt`. {_warm_start_text(training)}
- Evaluation: `esper compare --seed {comparison["seed"]} --episodes {len(comparison["seeds"])}`; every controller
  faces the same episodes (data order and host initialization per seed). Evaluation seeds have the top bit set
  and training seeds never do; nothing was tuned on them. The other schedules and the random controller ran on
  the first {len(more["seeds"])} of these seeds (`--episodes {len(more["seeds"])}`), paired there with the best
  schedule's episodes on the same seeds.

{_seed_block(comparison["seeds"])}

## Results ({len(comparison["seeds"])} held-out episodes)

Means with 95 % bootstrap intervals; "vs" columns are paired differences of test accuracy (row minus column).
Gain per 1k params: test accuracy gained over the static host per 1,000 added parameters.

{main_table}

Rows: `static` grows nothing; `heuristic` is tamiyo's rule-based controller; the learned rows are the training
run's policy (`:best` the best validated checkpoint, `:latest` the last update, `stochastic:` sampling every
head); the `--rounds 1` run is the same command stopped after its first round (the warm start plus one PPO
update), the ablation that shows what the remaining rounds of PPO add.

{notes}

![comparison](digits/comparison.png)

{_headline_section(roles, training, other, comparison)}
## Every other fixed schedule ({len(more["seeds"])} of the held-out episodes)

{more_table}

## The schedule choice (training-range seeds only)

{pick_table}

## Training

![learning curves](digits/learning_curves.png)

{_rounds_table(training, 5)}

Deterministic validation (the argmax policy on the run's selection seeds; the best score's policy is
`checkpoints/best.pt`):

{_validations_table(training)}

## Runs

{runs}

## Reproduce

```bash
uv run esper pick-schedule --episodes 16 --out runs/digits-pick          # optional: gives the committed choice
uv run esper train ppo --config {train_config} --out {_run_dir(learned)}
uv run esper train ppo --config {train_config} --rounds 1 --out {_run_dir(learned)}-1
uv run esper train ppo --config {other_config} --out {_run_dir(roles["other_learned"])}
uv run esper compare --episodes {len(comparison["seeds"])} --seed {comparison["seed"]} --out runs/digits-compare \\
    --controllers '{comparison["given_as"]}'
uv run esper compare --episodes {len(more["seeds"])} --seed {more["seed"]} --out runs/digits-compare-more \\
    --controllers '{more["given_as"]}'
uv run python tools/digits_results.py collect --pick runs/digits-pick --train {_run_dir(learned)} \\
    --prefix {_run_dir(learned)}-1 --other-train {_run_dir(roles["other_learned"])} \\
    --compare runs/digits-compare --compare-more runs/digits-compare-more \\
    --compare-controllers '{comparison["given_as"]}' \\
    --more-controllers '{more["given_as"]}' --learned '{learned}' --train-config {train_config} \\
    --other-learned '{roles["other_learned"]}' --other-config {other_config} --best-schedule '{best_schedule}'
```

All of it is deterministic on CPU: the same commands give the same numbers at the same commit.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect", help="copy the runs' records into docs/results/digits/, then render")
    for name in ("pick", "train", "prefix", "other-train", "compare", "compare-more"):
        gather.add_argument(f"--{name}", type=Path, required=True)
    gather.add_argument("--compare-controllers", required=True, help="the --controllers argument of --compare")
    gather.add_argument("--more-controllers", required=True, help="the --controllers argument of --compare-more")
    gather.add_argument("--learned", required=True, help="the compare label of the headline learned controller")
    gather.add_argument("--train-config", required=True, help="the --config file of --train")
    gather.add_argument("--other-learned", required=True, help="the compare label of --other-train's policy")
    gather.add_argument("--other-config", required=True, help="the --config file of --other-train")
    gather.add_argument("--best-schedule", required=True, help="the compare label of the best fixed schedule")
    gather.add_argument("--note", action="append", default=[], help="a paragraph under the results table")
    gather.add_argument("--wall", action="append", default=[], help="NAME=SECONDS of wall time, as measured")
    commands.add_parser("render", help="write docs/results/digits.md from docs/results/digits/")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args)
    else:
        render()
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
