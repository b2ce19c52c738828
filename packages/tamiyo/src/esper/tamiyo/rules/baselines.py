"""Two reference controllers: uniformly random valid actions, and always WAIT (the static host).

They bracket a learned policy: it should beat random-valid (which exercises every physically possible action)
and justify any growth against static (no seeds at all).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from esper.leyline import (
    HEAD_PLACEHOLDERS,
    ActionHead,
    EnvObservation,
    EpisodeEnvs,
    FactoredAction,
    LifecycleOp,
    SlotConfig,
    Topology,
    is_relevant,
)
from esper.tamiyo.encoding.masks import STATIC_HEADS, build_mask_arrays


class RandomValidController:
    """Uniform over the valid ops, then over the valid slots for that op, then over the valid values of each head
    the op uses; heads it ignores keep their placeholders. One seeded ``numpy`` generator serves every env and
    keeps running across episodes (each episode gets fresh draws, the whole run is reproducible from ``seed``)."""

    def __init__(self, slot_config: SlotConfig, topology: Topology = Topology.CNN, *, seed: int) -> None:
        self.slot_config = slot_config
        self.topology = topology
        self._rng = np.random.default_rng(seed)
        self._envs = EpisodeEnvs(self.name)

    @property
    def name(self) -> str:
        return "random_valid"

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)

    def explain(self, env_id: int) -> dict[str, object]:
        """Every choice is a uniform draw over what the masks allow (leyline ``ExplainingController``)."""
        return {"rule": "uniform_over_valid"}

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        self._envs.check(env_ids, observations)
        masks = build_mask_arrays(observations, self.slot_config, self.topology)
        actions = []
        for row in range(len(observations)):
            op = LifecycleOp(int(self._rng.choice(np.flatnonzero(masks.op[row]))))
            slots = np.flatnonzero(masks.slot_by_op[row, op])
            indices = {
                ActionHead.OP: int(op),
                ActionHead.SLOT: int(self._rng.choice(slots)) if is_relevant(op, ActionHead.SLOT) else int(slots[0]),
            }
            for head in STATIC_HEADS:
                relevant = is_relevant(op, head)
                choices = np.flatnonzero(masks.heads[head][row])
                indices[head] = int(self._rng.choice(choices)) if relevant else HEAD_PLACEHOLDERS[head]
            actions.append(FactoredAction.from_head_indices(indices, self.topology))
        return actions


class StaticController:
    """Always WAIT: the host trains without ever growing a seed."""

    def __init__(self) -> None:
        self._envs = EpisodeEnvs(self.name)

    @property
    def name(self) -> str:
        return "static"

    def start_episodes(self, n_envs: int) -> None:
        self._envs.start(n_envs)

    def explain(self, env_id: int) -> dict[str, object]:
        """The static host never grows (leyline ``ExplainingController``)."""
        return {"rule": "always_wait"}

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        self._envs.check(env_ids, observations)
        return [FactoredAction.wait() for _ in env_ids]
