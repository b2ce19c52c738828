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
from esper.app.statistics import bootstrap_mean
from esper.simic.atomic_files import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
DATA = RESULTS / "digits"
PAGE = RESULTS / "digits.md"
#: The margin over the heuristic the issue asks of the learned controller, in points of test accuracy.
HEURISTIC_MARGIN = 15.0
#: The metric's short name in table headings.
METRIC = "acc"


# ------------------------------------------------------------------------------------------------ collect
def collect(args: argparse.Namespace) -> None:
    walls = dict(wall_entry(text) for text in args.wall)
    DATA.mkdir(parents=True, exist_ok=True)
    pick = read_json(args.pick / "results.json")
    write_json_atomic(DATA / "pick.json", {**pick, "code": run_code(args.pick), "wall_seconds": walls.get("pick")})
    write_json_atomic(DATA / "training.json", training_record(args.train, walls.get("train")))
    write_json_atomic(DATA / "prefix.json", training_record(args.prefix, walls.get("prefix")))
    write_json_atomic(DATA / "other_training.json", training_record(args.other_train, walls.get("other_train")))
    write_json_atomic(
        DATA / "compare.json", comparison_record(args.compare, args.compare_controllers, walls.get("compare"))
    )
    write_json_atomic(
        DATA / "compare_more.json",
        comparison_record(args.compare_more, args.more_controllers, walls.get("compare_more")),
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


# ------------------------------------------------------------------------------------------------- render
def _targets(comparison: dict[str, Any], learned: str, best_schedule: str) -> list[list[object]]:
    versus_schedule = paired(comparison, learned, best_schedule)
    versus_heuristic = paired(comparison, learned, "heuristic")
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
                bootstrap_mean(values_of(comparison["episodes"][label], "test_accuracy")).format(2),
            ]
            for kind, (label, config, record) in runs.items()
        ],
    )
    feed_forward_minus_lstm = paired(comparison, runs["mlp"][0], runs["lstm"][0])
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

{growth_table(comparison, growth_labels)}
"""


def render() -> Path:
    write_text_atomic(PAGE, page_text())
    return PAGE


def page_text() -> str:
    """The page, from the records in docs/results/digits/ alone."""
    pick = read_json(DATA / "pick.json")
    training = read_json(DATA / "training.json")
    prefix = read_json(DATA / "prefix.json")
    comparison = read_json(DATA / "compare.json")
    more = read_json(DATA / "compare_more.json")
    other = read_json(DATA / "other_training.json")
    roles = read_json(DATA / "roles.json")
    learned, best_schedule = roles["learned"], roles["best_schedule"]
    train_config, other_config = roles["train_config"], roles["other_config"]
    notes = "\n\n".join(roles["notes"])
    static = values_of(comparison["episodes"]["static"], "test_accuracy")
    against = [best_schedule, "heuristic"]
    header = ["controller", "test acc %", "val acc %", "params added", "gain per 1k params (pp)"]
    main_table = markdown_table(
        [*header, f"vs {best_schedule} (pp)", "vs heuristic (pp)"], controller_rows(comparison, against, static)
    )
    more_static = values_of(comparison["episodes"]["static"][: len(more["seeds"])], "test_accuracy")
    more_with_best = {**more, "episodes": {**more["episodes"], best_schedule: comparison["episodes"][best_schedule]}}
    more_table = markdown_table(
        [*header, f"vs {best_schedule} (pp)"], controller_rows(more_with_best, [best_schedule], more_static)
    )
    data = comparison["data"]
    sizes = data["sizes"]
    config = training["config"]
    runs = markdown_table(
        ["run", "commit", "wall time (2-core CPU)"],
        [
            ["`esper pick-schedule --episodes 16`", commit_text(pick["code"]), minutes(pick["wall_seconds"])],
            [
                f"`esper train ppo --config {train_config}`",
                commit_text(training["code"]),
                minutes(training["wall_seconds"]),
            ],
            [f"`esper train ppo --config {other_config}`", commit_text(other["code"]), minutes(other["wall_seconds"])],
            ["the same command with `--rounds 1`", commit_text(prefix["code"]), minutes(prefix["wall_seconds"])],
            [
                f"`esper compare` ({len(comparison['seeds'])} episodes)",
                commit_text(comparison["code"]),
                minutes(comparison["wall_seconds"]),
            ],
            [
                f"`esper compare` ({len(more['seeds'])} episodes)",
                commit_text(more["code"]),
                minutes(more["wall_seconds"]),
            ],
        ],
    )
    return f"""# The learned controller against every fixed schedule on `digits`

_Generated by `tools/digits_results.py render` from the records in [`digits/`](digits/); do not edit by hand.
Produced at commit `{commit_text(training["code"])}` (each run's commit is listed under "Runs")._

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
  `checkpoints/best.pt`. {warm_start_text(training, "accuracy")}
- Evaluation: `esper compare --seed {comparison["seed"]} --episodes {len(comparison["seeds"])}`; every controller
  faces the same episodes (data order and host initialization per seed). Evaluation seeds have the top bit set
  and training seeds never do; nothing was tuned on them. The other schedules and the random controller ran on
  the first {len(more["seeds"])} of these seeds (`--episodes {len(more["seeds"])}`), paired there with the best
  schedule's episodes on the same seeds.

{seed_block(comparison["seeds"])}

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

{pick_table(pick, METRIC)}

{training_section(training, "digits", METRIC)}
## Runs

{runs}

## Reproduce

```bash
uv run esper pick-schedule --episodes 16 --out runs/digits-pick          # optional: gives the committed choice
uv run esper train ppo --config {train_config} --out {run_dir(learned)}
uv run esper train ppo --config {train_config} --rounds 1 --out {run_dir(learned)}-1
uv run esper train ppo --config {other_config} --out {run_dir(roles["other_learned"])}
uv run esper compare --episodes {len(comparison["seeds"])} --seed {comparison["seed"]} --out runs/digits-compare \\
    --controllers '{comparison["given_as"]}'
uv run esper compare --episodes {len(more["seeds"])} --seed {more["seed"]} --out runs/digits-compare-more \\
    --controllers '{more["given_as"]}'
uv run python tools/digits_results.py collect --pick runs/digits-pick --train {run_dir(learned)} \\
    --prefix {run_dir(learned)}-1 --other-train {run_dir(roles["other_learned"])} \\
    --compare runs/digits-compare --compare-more runs/digits-compare-more \\
    --compare-controllers '{comparison["given_as"]}' \\
    --more-controllers '{more["given_as"]}' --learned '{learned}' --train-config {train_config} \\
    --other-learned '{roles["other_learned"]}' --other-config {other_config} --best-schedule '{best_schedule}'
```

All of it is deterministic on CPU: the same commands give the same numbers at the same commit, on a CPU whose
kernels are the recorded ones. These runs were made where torch, oneDNN and MKL dispatch to AVX2 code; on an
AVX-512 CPU they take other kernels whose sums round differently and the episodes drift, so there, prefix the
commands with `ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2` (the rerun test does;
`python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"` tells which a machine uses).
"""


def _collect_arguments(gather: argparse.ArgumentParser) -> None:
    for name in ("pick", "train", "prefix", "other-train", "compare", "compare-more"):
        gather.add_argument(f"--{name}", type=Path, required=True)
    gather.add_argument("--compare-controllers", required=True, help="the --controllers argument of --compare")
    gather.add_argument("--more-controllers", required=True, help="the --controllers argument of --compare-more")
    gather.add_argument("--learned", required=True, help="the compare label of the headline learned controller")
    gather.add_argument("--train-config", required=True, help="the --config file of --train")
    gather.add_argument("--other-learned", required=True, help="the compare label of --other-train's policy")
    gather.add_argument("--other-config", required=True, help="the --config file of --other-train")
    gather.add_argument("--best-schedule", required=True, help="the compare label of the best fixed schedule")


def main(argv: Sequence[str] | None = None) -> int:
    return page_command(argv, __doc__.splitlines()[0], "digits", _collect_arguments, collect, render)


if __name__ == "__main__":
    sys.exit(main())
