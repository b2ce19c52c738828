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
    """Leyline ``ActionMasks`` of one step for this policy's action space: ``batch`` bool rows laid out for
    ``head_sizes`` (``ActionMasks`` checked its width against its own sizes when it was built)."""
    if masks.head_sizes != head_sizes:
        raise MaskShapeError(
            f"action masks are for head sizes {_listed(masks.head_sizes)}, this policy's are {_listed(head_sizes)}"
        )
    check_mask("side-by-side", masks.side_by_side, (batch, masks.side_by_side.shape[1]))


def check_stored_actions(actions: torch.Tensor, masks: torch.Tensor, leading: tuple[int, ...], width: int) -> None:
    """Stored ``actions`` ``[*leading, H]`` int64 and ``masks`` ``[*leading, H, width]`` bool."""
    expected = (*leading, len(HEAD_ORDER))
    if actions.dtype != torch.int64 or tuple(actions.shape) != expected:
        raise MaskShapeError(
            f"stored actions are {actions.dtype} {list(actions.shape)}, expected int64 {list(expected)}"
        )
    check_mask("stored", masks, (*expected, width))


def _listed(sizes: Mapping[ActionHead, int]) -> dict[str, int]:
    return {head.value: sizes[head] for head in HEAD_ORDER if head in sizes}


def check_hidden(hidden: tuple[torch.Tensor, torch.Tensor], expected: tuple[int, int, int]) -> None:
    """Recurrent state ``(h, c)``, each ``[layers, batch, hidden_dim]``."""
    for name, tensor in zip(("h", "c"), hidden, strict=True):
        if tuple(tensor.shape) != expected:
            raise ConfigError(
                f"hidden state {name} has shape {list(tensor.shape)}, expected [layers, batch, hidden] = "
                f"{list(expected)}"
            )
