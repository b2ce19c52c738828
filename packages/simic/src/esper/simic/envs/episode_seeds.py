"""Episode seeds: training and evaluation draw from disjoint ranges, so held-out seeds are never trained on.

Training seeds have the top bit of a 32-bit integer clear, evaluation seeds have it set. Selection seeds are
training-range seeds drawn from a stream of their own: what model selection (the best checkpoint of a PPO run, the
best fixed schedule) is judged on, so no choice ever looks at an evaluation seed. An episode seed fixes
the host initialization, the data order and the seeds' initialization, so every controller evaluated on the same
seed faces the same episode.
"""

from __future__ import annotations

import numpy as np

_TOP_BIT = 1 << 31
_LOW_BITS = _TOP_BIT - 1
_TRAIN, _EVAL, _SAMPLING, _MINIBATCH, _SELECTION, _DEMONSTRATION, _CLONING = 0, 1, 2, 3, 4, 5, 6


def _derive(*words: int) -> int:
    return int(np.random.SeedSequence([w & 0xFFFFFFFF for w in words]).generate_state(1)[0])


def training_episode_seeds(run_seed: int, round_index: int, n_envs: int) -> list[int]:
    return [_derive(_TRAIN, run_seed, round_index, env) & _LOW_BITS for env in range(n_envs)]


def evaluation_episode_seeds(eval_seed: int, n_episodes: int) -> list[int]:
    return [_TOP_BIT | (_derive(_EVAL, eval_seed, episode) & _LOW_BITS) for episode in range(n_episodes)]


def selection_episode_seeds(run_seed: int, n_episodes: int) -> list[int]:
    """Training-range seeds for model selection, the same for every round of a run with ``run_seed``."""
    return [_derive(_SELECTION, run_seed, episode) & _LOW_BITS for episode in range(n_episodes)]


def demonstration_episode_seeds(run_seed: int, n_episodes: int) -> list[int]:
    """Training-range seeds of the episodes a demonstrator plays for a warm start (a stream of their own)."""
    return [_derive(_DEMONSTRATION, run_seed, episode) & _LOW_BITS for episode in range(n_episodes)]


def is_evaluation_seed(seed: int) -> bool:
    return bool(seed & _TOP_BIT)


def sampling_seed(run_seed: int, round_index: int) -> int:
    """Seed of the action-sampling generator of one training round."""
    return _derive(_SAMPLING, run_seed, round_index)


def minibatch_seed(run_seed: int, round_index: int) -> int:
    """Seed of the minibatch-order generator of one PPO update."""
    return _derive(_MINIBATCH, run_seed, round_index)


def cloning_seed(run_seed: int) -> int:
    """Seed of the minibatch-order generator of a warm start's behaviour cloning."""
    return _derive(_CLONING, run_seed)
