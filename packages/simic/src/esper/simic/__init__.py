"""Simic: where controllers meet training.

- ``envs``: host-training environments (one host epoch per RL step, with the reward and the governor's
  rollbacks) and the pools that step many of them in this process, in worker processes or as Ray actors;
- ``ppo``: the PPO updater with its loss, statistics, rollout buffer and advantages;
- ``episode_loop``: any leyline ``Controller`` driven through a pool;
- ``training``: PPO rounds (collect with ``policy_controller``, update, checkpoint with ``checkpoints``);
- ``demonstrations`` and ``warm_start``: a demonstrator's episodes stored as the policy's rollouts, and the
  behaviour cloning (``ppo.cloning``) that fits a new policy to them before its first PPO round;
- ``policy_check``: ``check_policy_bundle``, the conformance check for any ``PolicyBundle``.

Simic never imports tamiyo: it sees a policy only through leyline's ``PolicyBundle`` protocol. The package
exports nothing itself; import from its modules (``esper.simic.envs.host_training_env``,
``esper.simic.ppo.updater``, ...). The RL step is described in docs/design/README.md.
"""
