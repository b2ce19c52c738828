"""Blueprint outcomes: what became of each blueprint's seeds (germinated, blended, fossilized, pruned and why),
what the fossils contributed, what the kept seeds cost and gained per 1,000 parameters."""

from __future__ import annotations

import dataclasses

from _esper_fixtures import episode

from esper.app.blueprint_outcomes import blueprint_outcomes, prune_rules
from esper.app.reporting import blueprints_table
from esper.leyline import SeedStage
from esper.simic.envs.episode_records import EpisodeSummary, LifecycleEvent, SeedAtEnd

S = SeedStage
SLOTS = ("r0c0", "r0c1", "r0c2")


def moved(
    epoch: int, slot: str, source: SeedStage, target: SeedStage, blueprint: str, contribution: float | None = None
) -> LifecycleEvent:
    return LifecycleEvent(epoch, slot, source, target, blueprint, 100, contribution)


def episodes() -> list[EpisodeSummary]:
    first = dataclasses.replace(
        episode(1, 50.0),
        events=(
            moved(0, "r0c0", S.DORMANT, S.GERMINATED, "conv_light"),
            moved(1, "r0c1", S.DORMANT, S.GERMINATED, "attention"),
            moved(3, "r0c0", S.TRAINING, S.BLENDING, "conv_light", 0.5),
            moved(5, "r0c1", S.TRAINING, S.EMBARGOED, "attention", -1.0),  # an instant prune
            moved(6, "r0c0", S.HOLDING, S.FOSSILIZED, "conv_light", 2.0),
            moved(6, "r0c2", S.DORMANT, S.GERMINATED, "attention"),
            moved(7, "r0c2", S.TRAINING, S.BLENDING, "attention", 0.1),
            moved(9, "r0c2", S.BLENDING, S.EMBARGOED, "attention", 0.0),  # a prune scheduled at epoch 7
        ),
        seeds_at_end=(SeedAtEnd("r0c0", "conv_light", S.FOSSILIZED, 100, 3.0, True),),
    )
    second = dataclasses.replace(
        episode(2, 40.0),
        events=(moved(2, "r0c0", S.DORMANT, S.GERMINATED, "conv_light"),),
        seeds_at_end=(SeedAtEnd("r0c0", "conv_light", S.TRAINING, 100, 0.7, False),),  # never blended: not added
    )
    return [first, second]


def test_outcomes_per_blueprint_with_the_rules_that_pruned() -> None:
    decisions = [
        {"event": "decision", "epoch": 5, "op": "PRUNE", "slot": 1, "rule": "prune_stalled"},
        {"event": "decision", "epoch": 7, "op": "PRUNE", "slot": 2, "rule": "prune_low_contribution"},
        {"event": "decision", "epoch": 8, "op": "WAIT", "slot": 0, "rule": "nothing_to_do"},
    ]
    outcomes = blueprint_outcomes(episodes(), [prune_rules(decisions, SLOTS), prune_rules([], SLOTS)])
    assert list(outcomes) == ["attention", "conv_light"]
    assert outcomes["conv_light"] == {
        "germinated": 2,
        "reached_blending": 1,
        "fossilized": 1,
        "pruned": 0,
        "pruned_from": {},
        "prune_rules": {},
        "mean_contribution_when_fossilized": 2.0,
        "params_added": 100,
        "params_added_per_episode": 50.0,
        "accuracy_gained_per_1k_params": 30.0,  # 3.0 pp at the end for 100 parameters
    }
    attention = outcomes["attention"]
    assert (attention["germinated"], attention["reached_blending"], attention["pruned"]) == (2, 1, 2)
    assert attention["pruned_from"] == {"BLENDING": 1, "TRAINING": 1}
    assert attention["prune_rules"] == {"prune_low_contribution": 1, "prune_stalled": 1}
    assert attention["mean_contribution_when_fossilized"] is None
    assert attention["params_added"] == 0 and attention["accuracy_gained_per_1k_params"] is None


def test_without_recorded_decisions_a_prune_still_says_where_it_came_from() -> None:
    outcomes = blueprint_outcomes(episodes())
    assert outcomes["attention"]["prune_rules"] == {}
    table = blueprints_table({"learned": outcomes})
    assert "| attention | 2 | 1 | 0 | 2 (from BLENDING 1, TRAINING 1) | n/a | 0 | n/a |" in table
    assert "| conv_light | 2 | 1 | 1 | 0 | 2.00 | 50 | 30.00 |" in table


def test_several_controllers_get_a_controller_column_and_no_seed_says_so() -> None:
    outcomes = blueprint_outcomes(episodes())
    table = blueprints_table({"heuristic": outcomes, "static": blueprint_outcomes([episode(3, 30.0)])})
    assert table.splitlines()[0].startswith("| controller | blueprint |")
    assert "| heuristic | conv_light |" in table and "static" not in table
    assert blueprints_table({"static": {}}) == "No seed was germinated."
