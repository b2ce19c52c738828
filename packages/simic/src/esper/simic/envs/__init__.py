"""Simic's environments: one host-training environment (a host epoch per RL step, its reward, the governor's
rollbacks), its settings, task data and model recipes, episode seeds, and the pools that step many of them at
once (in this process, in worker processes, or as Ray actors).

Nothing here knows PPO: any controller drives these environments through ``esper.simic.episode_loop``.
"""
