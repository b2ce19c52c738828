"""Shape and dtype checks at the policy's forward boundary, before any tensor reaches the network.

They read only shapes and dtypes (host metadata), never tensor values, so they cost no device sync and never
break a compiled graph (they run outside it). Each error names the tensor, its shape and the expected shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from esper.leyline import (
    HEAD_ORDER,
    ActionHead,
    ActionMasks,
    ConfigError,
    FeatureWidthError,
    LifecycleOp,
    MaskShapeError,
)


def check_input_names(inputs: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> None:
    """``inputs`` (``EncodedObservations.inputs`` or their stored stack) must hold exactly ``names``."""
    if set(inputs) != set(names):
        raise FeatureWidthError(f"policy inputs are {sorted(inputs)}, this policy reads {sorted(names)}")


def check_features(features: torch.Tensor, rank: int, feature_dim: int) -> tuple[int, ...]:
    """``features`` must be floating, of rank ``rank``, ``feature_dim`` wide; returns the leading shape."""
    if not features.is_floating_point():
        raise TypeError(f"features must be a floating tensor, got {features.dtype}")
    if features.dim() != rank or features.shape[-1] != feature_dim:
        raise FeatureWidthError(
            f"features have shape {list(features.shape)}, expected rank {rank} with last dimension "
            f"feature_dim={feature_dim}"
        )
    return tuple(features.shape[:-1])


def check_blueprint_indices(indices: torch.Tensor, leading: tuple[int, ...], num_slots: int) -> None:
    expected = (*leading, num_slots)
    if indices.dtype != torch.int64:
        raise TypeError(f"blueprint_indices must be int64, got {indices.dtype}")
    if tuple(indices.shape) != expected:
        raise FeatureWidthError(f"blueprint_indices have shape {list(indices.shape)}, expected {list(expected)}")


def check_mask(name: str, mask: torch.Tensor, expected: tuple[int, ...]) -> None:
    if mask.dtype != torch.bool:
        raise MaskShapeError(f"{name} mask must be bool, got {mask.dtype}")
    if tuple(mask.shape) != expected:
        raise MaskShapeError(f"{name} mask has shape {list(mask.shape)}, expected {list(expected)}")


def check_step_masks(masks: ActionMasks, batch: int, head_sizes: Mapping[ActionHead, int]) -> None:
    """Leyline ``ActionMasks`` of one step: ``op`` ``[batch, ops]``, ``slot_by_op`` ``[batch, ops, slots]`` and
    every other head ``[batch, head_size]``."""
    num_ops = len(LifecycleOp)
    check_mask(ActionHead.OP.value, masks.op, (batch, num_ops))
    check_mask("slot_by_op", masks.slot_by_op, (batch, num_ops, head_sizes[ActionHead.SLOT]))
    for head in HEAD_ORDER:
        if head in (ActionHead.OP, ActionHead.SLOT):
            continue
        if head not in masks.heads:
            raise MaskShapeError(f"action masks lack the {head.value} head")
        check_mask(head.value, masks.heads[head], (batch, head_sizes[head]))


def check_sequence_heads(
    actions: Mapping[ActionHead, torch.Tensor],
    masks: Mapping[ActionHead, torch.Tensor],
    leading: tuple[int, ...],
    head_sizes: Mapping[ActionHead, int],
) -> None:
    """Stored ``actions[head]`` ``[*leading]`` int64 and ``masks[head]`` ``[*leading, head_size]`` bool."""
    for head in HEAD_ORDER:
        if head not in actions or head not in masks:
            raise MaskShapeError(f"stored actions and masks need every head; {head.value} is missing")
        action = actions[head]
        if action.dtype != torch.int64 or tuple(action.shape) != leading:
            raise MaskShapeError(
                f"{head.value} actions are {action.dtype} {list(action.shape)}, expected int64 {list(leading)}"
            )
        check_mask(head.value, masks[head], (*leading, head_sizes[head]))


def check_hidden(hidden: tuple[torch.Tensor, torch.Tensor], expected: tuple[int, int, int]) -> None:
    """Recurrent state ``(h, c)``, each ``[layers, batch, hidden_dim]``."""
    for name, tensor in zip(("h", "c"), hidden, strict=True):
        if tuple(tensor.shape) != expected:
            raise ConfigError(
                f"hidden state {name} has shape {list(tensor.shape)}, expected [layers, batch, hidden] = "
                f"{list(expected)}"
            )
