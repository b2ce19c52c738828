"""Tamiyo's learned policy: the factored recurrent actor-critic (LSTM, per-head MLPs, masked distributions), its
``PolicyBundle`` (leyline's protocol, what simic trains), and the registry and factory that build it by name.

It reads observations through ``esper.tamiyo.encoding`` and never imports the rule-based controllers.
"""
