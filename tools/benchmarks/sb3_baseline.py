"""The reference side of the PPO-throughput benchmark: sb3-contrib's ``RecurrentPPO`` (optional ``bench``
dependency group) set up to match Esper's update and fed the same synthetic rollout.

Only ``train()`` is timed, after ``compute_returns_and_advantage`` (Esper's update computes its GAE too); the
rollout buffer is refilled outside the clock before every update. The old log-probs, values and the LSTM state
before every step are computed by this policy itself, so its first ratios are 1 as in a real rollout.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

try:
    import gymnasium
    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.type_aliases import RNNStates
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv
except ImportError as error:  # pragma: no cover - depends on the installed groups
    raise ImportError(
        "the PPO benchmark needs the optional bench dependencies: `uv sync --group bench` "
        "(or run `uv run --group bench tools/bench`)"
    ) from error


@dataclass(frozen=True)
class SyntheticRollout:
    """One round of rollouts, env-major: ``features`` [envs, steps, width] float32, ``actions`` [envs, steps,
    heads] int64 (head order), ``rewards`` [envs, steps] float32; every env's episode starts at step 0 and ends
    at its last step."""

    features: npt.NDArray[np.float32]
    actions: npt.NDArray[np.int64]
    rewards: npt.NDArray[np.float32]

    @property
    def n_envs(self) -> int:
        return int(self.features.shape[0])

    @property
    def steps(self) -> int:
        return int(self.features.shape[1])


@dataclass(frozen=True)
class MatchedSettings:
    """The PPO settings both sides share (Esper's ``PPOConfig`` defaults, KL early stop off on both sides so
    both run every epoch and minibatch)."""

    learning_rate: float
    update_epochs: int
    minibatch_envs: int
    clip_ratio: float
    value_coef: float
    entropy_coef: float
    max_grad_norm: float
    gamma: float
    gae_lambda: float
    hidden_dim: int
    num_layers: int


class _SpacesOnly(gymnasium.Env):  # type: ignore[misc]
    """Declares the observation and action spaces; ``train()`` never steps an env."""

    def __init__(self, width: int, head_sizes: Sequence[int]) -> None:
        super().__init__()
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (width,), np.float32)
        self.action_space = gymnasium.spaces.MultiDiscrete(list(head_sizes))

    def reset(
        self, *, seed: int | None = None, options: dict[str, object] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, object]]:
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(
        self, action: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, object]]:
        return np.zeros(self.observation_space.shape, np.float32), 0.0, True, False, {}


class RecurrentPPOBaseline:
    """``RecurrentPPO('MlpLstmPolicy')`` with Esper's rollout size, epochs, minibatch size, optimizer settings
    and LSTM width. ``separate_critic_lstm=False``: one LSTM shared by actor and critic (like Esper's network);
    ``True``: sb3-contrib's default, a second LSTM for the critic."""

    def __init__(
        self,
        rollout: SyntheticRollout,
        head_sizes: Sequence[int],
        settings: MatchedSettings,
        device: torch.device,
        *,
        separate_critic_lstm: bool,
        seed: int,
    ) -> None:
        self.rollout = rollout
        width = rollout.features.shape[2]
        env = DummyVecEnv([functools.partial(_SpacesOnly, width, head_sizes) for _ in range(rollout.n_envs)])
        self.model = RecurrentPPO(
            "MlpLstmPolicy",
            env,
            learning_rate=settings.learning_rate,
            n_steps=rollout.steps,
            batch_size=settings.minibatch_envs * rollout.steps,
            n_epochs=settings.update_epochs,
            gamma=settings.gamma,
            gae_lambda=settings.gae_lambda,
            clip_range=settings.clip_ratio,
            ent_coef=settings.entropy_coef,
            vf_coef=settings.value_coef,
            max_grad_norm=settings.max_grad_norm,
            target_kl=None,
            normalize_advantage=True,
            policy_kwargs={
                "lstm_hidden_size": settings.hidden_dim,
                "n_lstm_layers": settings.num_layers,
                "shared_lstm": not separate_critic_lstm,
                "enable_critic_lstm": separate_critic_lstm,
            },
            seed=seed,
            device=device,
        )
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self._device = device
        self._precompute()

    @property
    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self.model.policy.parameters()))

    def _precompute(self) -> None:
        """Per step: the LSTM state before it (what a rollout stores), the old values and log-probs."""
        rollout = self.rollout
        policy = self.model.policy
        policy.set_training_mode(False)
        envs, steps = rollout.n_envs, rollout.steps
        features = torch.as_tensor(rollout.features, device=self._device)
        starts = torch.zeros(envs, steps, device=self._device)
        starts[:, 0] = 1.0
        lstm = policy.lstm_actor
        shape = (lstm.num_layers, envs, lstm.hidden_size)
        state = RNNStates(
            (torch.zeros(shape, device=self._device), torch.zeros(shape, device=self._device)),
            (torch.zeros(shape, device=self._device), torch.zeros(shape, device=self._device)),
        )
        self._states_before = []
        with torch.no_grad():
            for step in range(steps):
                self._states_before.append(state)
                _, _, _, state = policy.forward(features[:, step], state, starts[:, step], deterministic=True)
            initial = self._states_before[0]
            actions = torch.as_tensor(rollout.actions, dtype=torch.float32, device=self._device)
            values, log_probs, _ = policy.evaluate_actions(
                features.reshape(envs * steps, -1),
                actions.reshape(envs * steps, -1),
                initial,
                starts.reshape(envs * steps),
            )
        self._values = values.reshape(envs, steps)
        self._log_probs = log_probs.reshape(envs, steps)
        self._starts = starts.cpu().numpy()

    def fill(self) -> None:
        """Reset the rollout buffer and add every step, as ``collect_rollouts`` would have."""
        rollout = self.rollout
        buffer = self.model.rollout_buffer
        buffer.reset()
        for step in range(rollout.steps):
            buffer.add(
                rollout.features[:, step],
                rollout.actions[:, step],
                rollout.rewards[:, step],
                self._starts[:, step],
                self._values[:, step].unsqueeze(1),
                self._log_probs[:, step],
                lstm_states=self._states_before[step],
            )

    def update(self) -> None:
        """GAE over the filled buffer (every episode ends at the last step), then one ``train()``."""
        envs = self.rollout.n_envs
        self.model.rollout_buffer.compute_returns_and_advantage(
            last_values=torch.zeros(envs, 1, device=self._device), dones=np.ones(envs, dtype=np.float32)
        )
        self.model.train()
