"""Why the deterministic (argmax) learned policy never advances its seed: a diagnostic for docs/results/digits.md.

Runs the learned policy deterministically on the first held-out evaluation seeds and, at every step where
ADVANCE is allowed in some slot, records the argmax op with its probability and an estimate of P(ADVANCE)
from 200 samples of the same step (sampling does not change the recurrent state the argmax run carries on with).

    uv run python docs/results/digits/argmax_probe.py RUN_DIR [EPISODES]
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from esper.app.backends import make_pool
from esper.app.controllers import load_policy
from esper.app.run_config import resolve
from esper.leyline import ActionHead, EnvObservation, FactoredAction, LifecycleOp, PolicyBundle
from esper.simic.envs.episode_seeds import evaluation_episode_seeds
from esper.simic.episode_loop import run_episodes
from esper.simic.policy_controller import PolicyController
from esper.tamiyo import register_builtin_policies

SAMPLES = 200


class ProbedController(PolicyController):
    """The deterministic controller, plus a record of the op head's choice where ADVANCE was possible."""

    def __init__(self, bundle: PolicyBundle) -> None:
        super().__init__(bundle, deterministic=True, name="argmax probe")
        self.records: list[tuple[str, float, float]] = []
        self.sampler = torch.Generator().manual_seed(0)

    def act(self, env_ids: Sequence[int], observations: Sequence[EnvObservation]) -> list[FactoredAction]:
        if self._hidden is None:
            raise RuntimeError("start_episodes() first")
        encoded = self.bundle.encode(observations)
        rows = torch.as_tensor(list(env_ids))
        hidden = (self._hidden[0][:, rows], self._hidden[1][:, rows])
        argmax = self.bundle.get_action(encoded, hidden, True, None)
        advance_count = torch.zeros(len(env_ids))
        for _ in range(SAMPLES):
            sampled = self.bundle.get_action(encoded, hidden, False, self.sampler)
            advance_count += (sampled.actions[ActionHead.OP] == LifecycleOp.ADVANCE).float()
        allowed = encoded.masks.op[:, LifecycleOp.ADVANCE]
        for index in range(len(env_ids)):
            if bool(allowed[index]):
                op = LifecycleOp(int(argmax.actions[ActionHead.OP][index])).name
                p_argmax = float(argmax.log_probs[ActionHead.OP][index].exp())
                self.records.append((op, p_argmax, float(advance_count[index]) / SAMPLES))
        return super().act(env_ids, observations)


def main(run_dir: Path, episodes: int) -> None:
    config = resolve("digits", {}, {"backend": "inprocess", "episodes": episodes, "envs": episodes, "seed": 0})
    task = config.preset.load_data(None)
    factory = config.preset.model_factory(config.preset.slots, config.episode_epochs)
    register_builtin_policies()
    bundle = load_policy(run_dir, "cpu", config.preset, which="latest")
    controller = ProbedController(bundle)
    seeds = evaluation_episode_seeds(0, episodes)
    pool = make_pool(config, task, factory, episodes)
    try:
        summaries = run_episodes(pool, controller, seeds)
    finally:
        pool.close()
    print(
        f"{len(seeds)} held-out seeds {seeds}: test accuracy {[round(s.test_accuracy, 1) for s in summaries]}, "
        f"final validation accuracy {[round(s.final_val_accuracy, 1) for s in summaries]}"
    )
    print(f"steps where ADVANCE was allowed: {len(controller.records)}")
    print(f"argmax op there: {dict(Counter(op for op, _, _ in controller.records))}")
    p_argmax = torch.tensor([p for _, p, _ in controller.records])
    p_advance = torch.tensor([a for _, _, a in controller.records])
    print(f"P(argmax op): mean {p_argmax.mean():.3f}, min {p_argmax.min():.3f}, max {p_argmax.max():.3f}")
    print(f"P(ADVANCE) (sampled): mean {p_advance.mean():.3f}, max {p_advance.max():.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4)
