"""Tamiyo's observation encoding: leyline observations turned into the policy's input tensors (feature layout and
features) and into action masks (leyline's legality rule as arrays and tensors).

Both the learned policy (``esper.tamiyo.policy``) and the rule-based controllers (``esper.tamiyo.rules``) stand
on this package; it imports neither of them.
"""
