"""Build docs/results/pydoc-bytes.md, every controller on the embedded language-modelling task, from its runs.

    uv run python tools/pydoc_results.py collect --pick P --train T --compare C --compare-controllers '...' \
        --learned LABEL --best-schedule LABEL --wall pick=SECONDS --wall train=SECONDS --wall compare=SECONDS
    uv run python tools/pydoc_results.py render

``collect`` copies what the page needs out of the run directories into docs/results/pydoc-bytes/ and records the
commit each run was made at; ``render`` writes the page from those files alone. The suite checks that the
committed page is exactly what ``render`` makes of the committed records and reruns two of the compared episodes
at today's code (tests/test_results_pydoc.py).

The page's claims are computed from the records, never typed in: how much growth adds over the static host (the
best fixed schedule, the heuristic, the learned controller) and how the learned controller stands against the best
fixed schedule, each a paired 95 % bootstrap interval over the held-out episodes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results_records import (
    best_validation,
    commit_text,
    comparison_record,
    controller_rows,
    growth_table,
    minutes,
    page_command,
    paired,
    pick_table,
    read_json,
    run_code,
    run_dir,
    seed_block,
    training_record,
    training_section,
    values_of,
    wall_entry,
    warm_start_text,
)

from esper.app.reporting import markdown_table
from esper.app.statistics import Interval
from esper.simic.atomic_files import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
TASK = "pydoc-bytes"
DATA = RESULTS / TASK
PAGE = RESULTS / f"{TASK}.md"
#: The metric's short name in table headings, and its full name in prose.
METRIC = "next-token acc"
METRIC_NAME = "next-token accuracy"


# ------------------------------------------------------------------------------------------------ collect
def collect(args: argparse.Namespace) -> None:
    walls = dict(wall_entry(text) for text in args.wall)
    DATA.mkdir(parents=True, exist_ok=True)
    pick = read_json(args.pick / "results.json")
    write_json_atomic(DATA / "pick.json", {**pick, "code": run_code(args.pick), "wall_seconds": walls.get("pick")})
    write_json_atomic(DATA / "training.json", training_record(args.train, walls.get("train")))
    write_json_atomic(
        DATA / "compare.json", comparison_record(args.compare, args.compare_controllers, walls.get("compare"))
    )
    roles = {
        "learned": args.learned,
        "train_config": args.train_config,
        "best_schedule": args.best_schedule,
        "notes": args.note,
    }
    write_json_atomic(DATA / "roles.json", roles)
    shutil.copyfile(args.train / "plots" / "learning_curves.png", DATA / "learning_curves.png")
    shutil.copyfile(args.compare / "plots" / "comparison.png", DATA / "comparison.png")


# ------------------------------------------------------------------------------------------------- render
def _sign(interval: Interval) -> str:
    """Whether a paired interval shows a difference: above 0, below 0, or neither."""
    if interval.low > 0:
        return "above 0"
    if interval.high < 0:
        return "below 0"
    return "includes 0"


def _claims(comparison: dict[str, Any], learned: str, best_schedule: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for label, other in (
        (best_schedule, "static"),
        ("heuristic", "static"),
        (learned, "static"),
        (learned, best_schedule),
        (learned, "heuristic"),
    ):
        difference = paired(comparison, label, other)
        rows.append([f"{label} minus {other}", difference.format(2), _sign(difference)])
    return rows


def render() -> Path:
    write_text_atomic(PAGE, page_text())
    return PAGE


def page_text() -> str:
    """The page, from the records in docs/results/pydoc-bytes/ alone."""
    pick = read_json(DATA / "pick.json")
    training = read_json(DATA / "training.json")
    comparison = read_json(DATA / "compare.json")
    roles = read_json(DATA / "roles.json")
    learned, best_schedule, train_config = roles["learned"], roles["best_schedule"], roles["train_config"]
    notes = "\n\n".join(roles["notes"])
    static = values_of(comparison["episodes"]["static"], "test_accuracy")
    header = ["controller", f"test {METRIC} %", f"val {METRIC} %", "params added", "gain per 1k params (pp)"]
    main_table = markdown_table(
        [*header, "vs static (pp)", f"vs {best_schedule} (pp)"],
        controller_rows(comparison, ["static", best_schedule], static, per_1k_digits=2),
    )
    data, config = comparison["data"], training["config"]
    sizes, env = data["sizes"], config["env"]
    episodes = len(comparison["seeds"])
    best = best_validation(training)
    growth_labels = {label: label for label in (best_schedule, "heuristic", learned)}
    runs = markdown_table(
        ["run", "commit", "wall time (2-core CPU)"],
        [
            [
                f"`esper pick-schedule --task {TASK} --episodes {len(pick['seeds'])}`",
                commit_text(pick["code"]),
                minutes(pick["wall_seconds"]),
            ],
            [
                f"`esper train ppo --task {TASK} --config {train_config}`",
                commit_text(training["code"]),
                minutes(training["wall_seconds"]),
            ],
            [
                f"`esper compare` ({episodes} episodes)",
                commit_text(comparison["code"]),
                minutes(comparison["wall_seconds"]),
            ],
        ],
    )
    return f"""# Growing a transformer: every controller on `{TASK}`

_Generated by `tools/pydoc_results.py render` from the records in [`{TASK}/`]({TASK}/); do not edit by hand.
Produced at commit `{commit_text(comparison["code"])}` (each run's commit is listed under "Runs")._

## What the held-out episodes show

Paired differences of final **test {METRIC_NAME}** over the {episodes} held-out episodes below (row minus column,
percentage points, 95 % bootstrap intervals). The learned controller is `{learned}`: the training run's
`checkpoints/best.pt`, every head argmax.

{markdown_table(["difference", "paired difference (pp)", "interval"], _claims(comparison, learned, best_schedule))}

## Protocol

- Task `{TASK}` (embedded, no download): {data["split"]} ({sizes["train"]:,} / {sizes["validation"]:,} /
  {sizes["test"]:,} windows). Host `bytes_impaired`: a decoder-only transformer of width 16 with **no
  attention**, two blocks with an MLP no wider than the stream, slots after both blocks; alone it predicts each
  byte from the byte before it and its position, and only a grown attention seed lets it read further back.
  Episodes of {env["max_epochs"]} epochs; an epoch trains on {env["epoch_examples"]} windows drawn from the
  training block in batches of {env["batch_size"]} ({env["optimizer"]}, lr {env["host_lr"]:g}, {env["lr_schedule"]}
  schedule), then validates on the validation windows.
- **Metric: {METRIC_NAME}**, the share of positions whose most likely next byte is the right one (every position
  of every window). The reward, the counterfactual contributions, the fossilize gate and the observations are all
  written in percentage points of a bounded accuracy, so next-token accuracy keeps their units and ranges; the
  validation loss (what the governor watches) is in every run's event log. Validation drives the episodes;
  **test {METRIC_NAME} is measured once, at the end of each episode**.
- The best fixed schedule (`{best_schedule}`) was picked by
  `esper pick-schedule --task {TASK} --episodes {len(pick["seeds"])}` on training-range selection seeds only, by
  mean final validation {METRIC_NAME} (below); the choice is committed as
  [`{TASK}/best_schedule.json`]({TASK}/best_schedule.json).
- Training: `esper train ppo --task {TASK} --config {train_config}` (the `{config["policy"]["kind"]}` policy):
  at most {config["run"]["rounds"]} rounds of {config["run"]["envs"]} envs or {config["run"]["time_budget_minutes"]:g}
  minutes, run seed {config["run"]["seed"]}, PPO defaults, rent weight {config["reward"]["rent_weight"]:g}, a warm
  start by behaviour cloning from the best schedule, and a deterministic validation of the argmax policy every
  {config["run"]["validate_every"]} rounds on {config["run"]["validation_episodes"]} training-range selection seeds
  that keeps the best policy as `checkpoints/best.pt` (best: {best["mean_val_accuracy"]:.2f} % after round
  {best["round"]}). {warm_start_text(training, METRIC_NAME)}
- Evaluation: `esper compare --task {TASK} --seed {comparison["seed"]} --episodes {episodes}`; every controller
  faces the same episodes (window order and host initialization per seed). Evaluation seeds have the top bit set
  and training seeds never do; nothing was tuned on them.

{seed_block(comparison["seeds"])}

## Results ({episodes} held-out episodes)

Means with 95 % bootstrap intervals; "vs" columns are paired differences of test {METRIC_NAME} (row minus
column). Gain per 1k params: test {METRIC_NAME} gained over the static host per 1,000 added parameters.

{main_table}

Rows: `static` grows nothing; `heuristic` is tamiyo's rule-based controller; `schedule:<blueprint>` germinates that
blueprint in every slot as soon as allowed and pushes it through the lifecycle; the learned rows are the training
run's policy (`:latest` the last update instead of the best validated one, `stochastic:` sampling every head).

{notes}

![comparison]({TASK}/comparison.png)

What the best schedule, the heuristic and the learned controller grow, slot by slot (from the comparison's
lifecycle events):

{growth_table(comparison, growth_labels)}

## The schedule choice (training-range seeds only)

{pick_table(pick, METRIC)}

{training_section(training, TASK, METRIC)}
## Runs

{runs}

## Reproduce

```bash
# optional: the pick gives the committed choice
uv run esper pick-schedule --task {TASK} --episodes {len(pick["seeds"])} --out runs/pydoc-pick
uv run esper train ppo --task {TASK} --config {train_config} --out {run_dir(learned)}
uv run esper compare --task {TASK} --episodes {episodes} --seed {comparison["seed"]} --out runs/pydoc-compare \\
    --controllers '{comparison["given_as"]}'
uv run python tools/pydoc_results.py collect --pick runs/pydoc-pick --train {run_dir(learned)} \\
    --compare runs/pydoc-compare --compare-controllers '{comparison["given_as"]}' \\
    --learned '{learned}' --train-config {train_config} --best-schedule '{best_schedule}'
```

All of it is deterministic on CPU: the same commands give the same numbers at the same commit. The training run
stops on its time budget, so how many rounds it reaches depends on the machine; `--resume` continues it.
"""


def _collect_arguments(gather: argparse.ArgumentParser) -> None:
    for name in ("pick", "train", "compare"):
        gather.add_argument(f"--{name}", type=Path, required=True)
    gather.add_argument("--compare-controllers", required=True, help="the --controllers argument of --compare")
    gather.add_argument("--learned", required=True, help="the compare label of the learned controller")
    gather.add_argument("--train-config", required=True, help="the --config file of --train")
    gather.add_argument("--best-schedule", required=True, help="the compare label of the best fixed schedule")


def main(argv: Sequence[str] | None = None) -> int:
    return page_command(argv, __doc__.splitlines()[0], TASK, _collect_arguments, collect, render)


if __name__ == "__main__":
    sys.exit(main())
