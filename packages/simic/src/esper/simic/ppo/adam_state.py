"""Validation of a saved Adam state against the live parameters, before ``load_state_dict`` touches anything.

torch accepts many malformed states at load time and fails only at the next step (or never, silently training
with garbage moments); a resumed run must instead refuse a bad checkpoint with one ``CheckpointError``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from esper.leyline import CheckpointError, identical


def check_adam_state(state: object, params: list[torch.nn.Parameter], groups: list[dict[str, Any]]) -> None:
    """An Adam state dict that fits ``params``: the same parameter groups and hyperparameter keys, and per
    parameter a finite step and finite moments of the parameter's shape (torch itself would only fail later)."""
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise CheckpointError("optimizer state must be a mapping with 'state' and 'param_groups'")
    saved_groups = state["param_groups"]
    if not isinstance(saved_groups, list) or len(saved_groups) != len(groups):
        raise CheckpointError(f"optimizer state must have {len(groups)} parameter group(s)")
    for saved, live in zip(saved_groups, groups, strict=True):
        if not isinstance(saved, dict) or set(saved) != set(live):
            raise CheckpointError("optimizer parameter groups do not match this policy")
        different = [key for key in live if key != "lr" and not identical(saved[key], live[key])]
        if different:
            raise CheckpointError(f"optimizer parameter group settings {different} do not match this policy's")
        lr = saved["lr"]
        if type(lr) is not float or not math.isfinite(lr) or lr < 0:
            raise CheckpointError(f"optimizer learning rate must be a finite float >= 0, got {lr!r}")
    per_param = state["state"]
    # Adam creates every parameter's state at its first step: a checkpoint holds all of them or none.
    if not isinstance(per_param, dict) or set(per_param) not in (set(), set(range(len(params)))):
        raise CheckpointError(
            f"optimizer per-parameter state must be keyed by all {len(params)} parameter indices (or be empty)"
        )
    for index, entry in per_param.items():
        shape = params[index].shape
        if not isinstance(entry, dict) or set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise CheckpointError(f"optimizer state of parameter {index} must hold step, exp_avg and exp_avg_sq")
        for key, value in entry.items():
            expected = () if key == "step" else shape
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.shape != expected:
                raise CheckpointError(
                    f"optimizer {key} of parameter {index} must be a float tensor of shape {expected}"
                )
            if not bool(torch.isfinite(value).all()) or (key != "exp_avg" and bool((value < 0).any())):
                raise CheckpointError(f"optimizer {key} of parameter {index} is negative or not finite")
