"""The env bookkeeping every ``Controller`` shares: ``start_episodes`` must come first, ``act`` takes known env ids.

A controller that silently accepted an unknown env id or a length mismatch would act on the wrong env's state.
It lives beside the protocol so that every controller (tamiyo's rules, simic's policy controller, a user's own)
refuses the same misuse with the same error and message.
"""

from __future__ import annotations

from collections.abc import Sequence

from esper.leyline.errors import ConfigError, InvalidStateMachineError
from esper.leyline.reports import EnvObservation


class EpisodeEnvs:
    """How many envs the current episodes have; validates each ``act`` call against it."""

    def __init__(self, controller_name: str) -> None:
        self._controller_name = controller_name
        self._n_envs: int | None = None

    def start(self, n_envs: int) -> None:
        if n_envs < 1:
            raise ConfigError(f"{self._controller_name}: start_episodes needs n_envs >= 1, got {n_envs}")
        self._n_envs = n_envs

    def check(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> None:
        if self._n_envs is None:
            raise InvalidStateMachineError(f"{self._controller_name}: act() called before start_episodes()")
        if len(env_ids) != len(observations):
            raise ConfigError(f"{self._controller_name}: {len(env_ids)} env ids for {len(observations)} observations")
        if len(set(env_ids)) != len(env_ids):
            raise ConfigError(f"{self._controller_name}: duplicate env ids {list(env_ids)}")
        unknown = [env for env in env_ids if not 0 <= env < self._n_envs]
        if unknown:
            raise ConfigError(
                f"{self._controller_name}: env ids {unknown} outside the {self._n_envs} envs of start_episodes()"
            )
