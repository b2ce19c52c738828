"""Simic: where controllers meet training. Host-training environments (one host epoch per RL step, with the
reward and the governor's rollbacks), pools that step many environments in this process or in worker processes,
the episode loop that drives any leyline ``Controller`` through them, and PPO with its rollout buffer, advantages
and checkpoints.

Simic never imports tamiyo: it sees a policy only through leyline's ``PolicyBundle`` protocol. The package
exports nothing itself; import from its modules (``esper.simic.env``, ``esper.simic.ppo``, ...). The RL step is
described in docs/design/README.md.
"""
