"""A fixed growth schedule: the scripted baseline a learned controller has to beat.

It germinates one blueprint in every empty slot as soon as the masks allow, asks every seed to ADVANCE whenever
that is legal and FOSSILIZE whenever that is legal, and never prunes. Legality comes from the masks (leyline's one
rule); whether a gate let a request through is read from the next observation's ``last_action``: after a refused
request the next candidate is tried first, so a seed its gate keeps refusing never starves the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from esper.leyline import (
    BlendStyle,
    Blueprint,
    ConfigError,
    EnvObservation,
    EpisodeEnvs,
    FactoredAction,
    InvalidStateMachineError,
    LifecycleOp,
    SlotConfig,
    Tempo,
    Topology,
    blueprint_refusal,
)
from esper.tamiyo.encoding.masks import build_mask_arrays

#: Candidates in priority order within one slot: lock in a finished seed, move a developing one on, grow.
_PRIORITY = (LifecycleOp.FOSSILIZE, LifecycleOp.ADVANCE, LifecycleOp.GERMINATE)

SCHEDULE_PREFIX = "schedule:"


class ScheduleController:
    """Leyline ``Controller``: the fixed schedule above with one blueprint, blend style and tempo."""

    def __init__(
        self,
        slot_config: SlotConfig,
        topology: Topology,
        blueprint: Blueprint,
        *,
        style: BlendStyle = BlendStyle.SIGMOID_ADD,
        tempo: Tempo = Tempo.STANDARD,
    ) -> None:
        refusal = blueprint_refusal(blueprint, topology)
        if refusal is not None:
            raise ConfigError(f"a fixed schedule cannot use it: {refusal}")
        self.slot_config = slot_config
        self.topology = topology
        self.blueprint = blueprint
        self.style = style
        self.tempo = tempo
        self._envs = EpisodeEnvs(self.name)
        self._last_rules: dict[int, dict[str, object]] = {}

    @property
    def name(self) -> str:
        return f"{SCHEDULE_PREFIX}{self.blueprint.registry_name}"

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)
        self._last_rules = {}

    def explain(self, env_id: int) -> dict[str, object]:
        """Which part of the schedule chose the env's last action (leyline ``ExplainingController``):
        ``<op>_when_legal`` (the first legal candidate), ``next_after_refusal`` (the previous request was refused,
        so the candidate after it), or ``nothing_legal`` (a WAIT)."""
        if env_id not in self._last_rules:
            raise InvalidStateMachineError(f"{self.name}: explain({env_id}) before the env's first act()")
        return self._last_rules[env_id]

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        self._envs.check(env_ids, observations)
        masks = build_mask_arrays(observations, self.slot_config, self.topology)
        actions = []
        for row, (env, observation) in enumerate(zip(env_ids, observations, strict=True)):
            legal = masks.slot_by_op[row]
            germinate_into = np.flatnonzero(legal[LifecycleOp.GERMINATE])[:1]
            candidates = [
                self._action(op, slot)
                for slot in range(self.slot_config.num_slots)
                for op in _PRIORITY
                if legal[op, slot] and (op is not LifecycleOp.GERMINATE or slot in germinate_into)
            ]
            action = _after_refusal(candidates, observation) if candidates else FactoredAction.wait()
            if not candidates:
                rule = "nothing_legal"
            elif action is candidates[0]:
                rule = f"{action.op.name.lower()}_when_legal"
            else:
                rule = "next_after_refusal"
            self._last_rules[env] = {"rule": rule, "signals": {"candidates": len(candidates)}}
            actions.append(action)
        return actions

    def _action(self, op: LifecycleOp, slot: int) -> FactoredAction:
        if op is LifecycleOp.GERMINATE:
            return FactoredAction.germinate(slot, self.blueprint, self.style, self.tempo)
        return FactoredAction(op, slot)


def _after_refusal(candidates: list[FactoredAction], observation: EnvObservation) -> FactoredAction:
    """The first candidate, or, when the previous request was refused and is a candidate again, the one after it
    (cyclically): a refused ADVANCE or FOSSILIZE is retried once the others have had their turn."""
    last = observation.last_action
    if last is None or last.success:
        return candidates[0]
    for index, action in enumerate(candidates):
        if action.op is last.op and action.slot == last.slot:
            return candidates[(index + 1) % len(candidates)]
    return candidates[0]
