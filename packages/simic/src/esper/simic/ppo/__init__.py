"""Simic's PPO: the updater (``updater``), its pure loss (``loss``) and statistics (``stats``), the rollout
buffer, GAE, the return normalizer and the checks on a saved Adam state.

Nothing here knows the environments: ``esper.simic.training`` collects rollouts and hands them to the updater.
"""
