"""Which blueprints pay off: per blueprint, what became of its seeds over a set of episodes.

Built from the episode summaries alone (their lifecycle events and the seeds they ended with), plus, when the run
recorded the decisions of a rule-based controller, the rule behind each prune. Counts are totals over the
episodes. A seed's "accuracy gained" is its counterfactual contribution (validation accuracy with it minus
without it, in percentage points) at the episode's end; only the seeds that change the output then (blended or
fossilized) count, as they are the ones whose parameters the episode added.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from esper.leyline import FAILURE_STAGES, LIVE_STAGES, SeedStage
from esper.simic.envs.episode_records import EpisodeSummary

#: One episode's PRUNE decisions that name their rule: slot name -> (epochs, rules), epochs ascending.
PruneRules = Mapping[str, tuple[list[int], list[str]]]


@dataclass
class BlueprintOutcome:
    germinated: int = 0
    reached_blending: int = 0
    fossilized: int = 0
    pruned: int = 0
    #: Prunes by the stage the seed was pruned from, and by the rule that pruned it (when recorded).
    pruned_from: Counter[str] = field(default_factory=Counter)
    prune_rules: Counter[str] = field(default_factory=Counter)
    fossil_contributions: list[float] = field(default_factory=list)
    params_added: int = 0
    #: Contribution at the end of the added seeds whose contribution was measured, and their parameters.
    contribution_at_end: float = 0.0
    measured_params: int = 0

    def as_dict(self, episodes: int) -> dict[str, Any]:
        fossils = self.fossil_contributions
        return {
            "germinated": self.germinated,
            "reached_blending": self.reached_blending,
            "fossilized": self.fossilized,
            "pruned": self.pruned,
            "pruned_from": dict(sorted(self.pruned_from.items())),
            "prune_rules": dict(sorted(self.prune_rules.items())),
            "mean_contribution_when_fossilized": sum(fossils) / len(fossils) if fossils else None,
            "params_added": self.params_added,
            "params_added_per_episode": self.params_added / episodes if episodes else 0.0,
            "accuracy_gained_per_1k_params": (
                self.contribution_at_end / (self.measured_params / 1000.0) if self.measured_params else None
            ),
        }


def prune_rules(decisions: Iterable[Mapping[str, Any]], slot_names: Sequence[str]) -> PruneRules:
    """The rules of one episode's recorded PRUNE decisions (decision events; a learned policy's carry no rule)."""
    by_slot: dict[str, tuple[list[int], list[str]]] = {}
    for decision in sorted(decisions, key=lambda d: int(d["epoch"])):
        if decision.get("op") == "PRUNE" and "rule" in decision:
            epochs, rules = by_slot.setdefault(slot_names[int(decision["slot"])], ([], []))
            epochs.append(int(decision["epoch"]))
            rules.append(str(decision["rule"]))
    return by_slot


def blueprint_outcomes(
    episodes: Sequence[EpisodeSummary], rules: Sequence[PruneRules] | None = None
) -> dict[str, dict[str, Any]]:
    """Per blueprint (by name, sorted), the outcome of its seeds over ``episodes``; ``rules[i]``: the prune rules
    recorded in episode i. A prune is credited to the last recorded PRUNE of its slot at or before it (a
    scheduled prune completes epochs after the decision)."""
    outcomes: dict[str, BlueprintOutcome] = {}
    for index, episode in enumerate(episodes):
        episode_rules = rules[index] if rules is not None else {}
        for event in episode.events:
            if event.blueprint is None:
                continue
            outcome = outcomes.setdefault(event.blueprint, BlueprintOutcome())
            if event.target is SeedStage.GERMINATED:
                outcome.germinated += 1
            elif event.source is SeedStage.TRAINING and event.target is SeedStage.BLENDING:
                outcome.reached_blending += 1
            elif event.target is SeedStage.FOSSILIZED:
                outcome.fossilized += 1
                if event.contribution is not None:
                    outcome.fossil_contributions.append(event.contribution)
            elif event.source in LIVE_STAGES and event.target in FAILURE_STAGES:
                outcome.pruned += 1
                outcome.pruned_from[event.source.name] += 1
                rule = _rule_at(episode_rules.get(event.slot), event.epoch)
                if rule is not None:
                    outcome.prune_rules[rule] += 1
        for seed in episode.seeds_at_end:
            if seed.affects_output:
                outcome = outcomes.setdefault(seed.blueprint, BlueprintOutcome())
                outcome.params_added += seed.params
                if seed.contribution is not None:
                    outcome.contribution_at_end += seed.contribution
                    outcome.measured_params += seed.params
    return {name: outcomes[name].as_dict(len(episodes)) for name in sorted(outcomes)}


def _rule_at(slot_rules: tuple[list[int], list[str]] | None, epoch: int) -> str | None:
    if slot_rules is None:
        return None
    epochs, rules = slot_rules
    position = bisect_right(epochs, epoch)
    return rules[position - 1] if position else None
