"""Tamiyo's controllers that are not learned: the heuristic (with its signal tracker and decisions), fixed
schedules, and the random-valid and static baselines.

They read observations and masks through ``esper.tamiyo.encoding`` and never import the learned policy.
"""
