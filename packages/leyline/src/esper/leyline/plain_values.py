"""Strict equality for the plain values checkpoints hold (numbers, strings, lists, tuples, mappings).

Python's ``==`` lets a one-element tensor pass for a number (``tensor(1.) == 1`` is truthy) and a float for an
int, so a checkpoint field mutated into the wrong type would compare equal and be accepted. Loaders compare
saved settings with ``identical`` instead.
"""

from __future__ import annotations


def identical(saved: object, live: object) -> bool:
    """``saved == live`` with the same type at every level of nesting."""
    if type(saved) is not type(live):
        return False
    if isinstance(saved, dict) and isinstance(live, dict):
        return saved.keys() == live.keys() and all(identical(saved[key], live[key]) for key in live)
    if isinstance(saved, list | tuple) and isinstance(live, list | tuple):
        return len(saved) == len(live) and all(identical(a, b) for a, b in zip(saved, live, strict=True))
    return bool(saved == live)
