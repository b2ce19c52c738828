"""All action heads side by side in one ``[..., num_heads, width]`` array (``width`` = the largest head, leyline's
``mask_width``).

Heads have different sizes; padding each to the widest one lets the masked-distribution math run once for all
heads instead of once per head (the act path's main cost), and it is the layout of the per-head tensors at the
policy seam (``ActionResult.masks``). Padding columns are always masked out, so a padded head is exactly the same
categorical distribution as the unpadded one. Head ``i`` is ``HEAD_ORDER[i]`` (leyline's ``HEAD_INDEX``).

The rollout's candidate rows (``candidate_source``, ``candidate_real``) are a precomputed gather index into the
masks laid side by side (``ActionMasks.side_by_side``), read row by row by the compiled sampler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from esper.leyline import HEAD_INDEX, HEAD_ORDER, ActionHead, ConfigError, LifecycleOp, mask_width

BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]
IntArray = npt.NDArray[np.int64]

_SLOT = HEAD_INDEX[ActionHead.SLOT]
#: The heads whose step mask does not depend on the op (``ActionMasks.heads``), in HEAD_ORDER.
_STATIC_HEADS = tuple(head for head in HEAD_ORDER if head not in (ActionHead.OP, ActionHead.SLOT))


class HeadLayout:
    """The head sizes, the padded width, and the candidate rows the rollout samples from."""

    def __init__(self, head_sizes: Mapping[ActionHead, int]) -> None:
        missing = [head.value for head in HEAD_ORDER if head not in head_sizes]
        if missing:
            raise ConfigError(f"head sizes are missing heads {missing}")
        self.sizes: tuple[int, ...] = tuple(head_sizes[head] for head in HEAD_ORDER)
        self.width = mask_width(head_sizes)
        candidates = self._gather(self._candidate_runs(head_sizes))
        #: The candidate rows, ``[H + num_ops - 1]`` rows of ``width`` positions, flattened: which column of
        #: ``ActionMasks.side_by_side`` each position reads, and whether it is a real column (padding reads column
        #: 0 and is never allowed). Rows: every head's step mask (HEAD_ORDER; the slot row is op 0's),
        #: then the slot mask of every other op. Scoring these rows gives every log-prob any op could need, so the
        #: op and the heads it implies come from one pass.
        self.candidate_source: IndexArray = candidates.source
        self.candidate_real: BoolArray = candidates.real
        num_ops = len(LifecycleOp)
        #: ``[num_ops, H]``: the candidate row each head is drawn from once the op is known (its own row, except
        #: the slot head: op 0's slot mask is in the slot head's row, the other ops' after the heads).
        self.rows_for_ops: IntArray = np.tile(np.arange(len(HEAD_ORDER)), (num_ops, 1))
        self.rows_for_ops[1:, _SLOT] = np.arange(len(HEAD_ORDER), len(HEAD_ORDER) + num_ops - 1)
        for table in (self.candidate_source, self.candidate_real, self.rows_for_ops):
            table.flags.writeable = False

    def _candidate_runs(self, head_sizes: Mapping[ActionHead, int]) -> list[tuple[int, int]]:
        """Where each row of ``candidates`` reads from the masks side by side."""
        ops, slots = len(LifecycleOp), head_sizes[ActionHead.SLOT]
        static_starts = _starts(tuple(head_sizes[head] for head in _STATIC_HEADS))
        starts: dict[ActionHead, int] = {
            head: ops + ops * slots + start for head, start in zip(_STATIC_HEADS, static_starts, strict=True)
        }
        starts[ActionHead.OP] = 0
        starts[ActionHead.SLOT] = ops  # op 0's slot row
        heads = [(starts[head], head_sizes[head]) for head in HEAD_ORDER]
        return heads + [(ops + op * slots, slots) for op in range(1, ops)]

    def _gather(self, runs: list[tuple[int, int]]) -> _Gather:
        """Padded rows where row ``r`` reads the ``runs[r] = (start, size)`` columns of the masks laid side by
        side (``ActionMasks.side_by_side``), then False up to ``width``."""
        columns = [(start + c, c < size) for start, size in runs for c in range(self.width)]
        return _Gather(
            np.array([column if real else 0 for column, real in columns], dtype=np.intp),
            np.array([real for _, real in columns], dtype=np.bool_),
        )


class _Gather(NamedTuple):
    """Where each padded position reads (``source``) and whether it is a real column (``real``; padding reads
    column 0 and is never allowed)."""

    source: IndexArray
    real: BoolArray


def host(tensor: torch.Tensor) -> npt.NDArray[Any]:
    """A tensor as a host numpy array (a view on the CPU, a copy from an accelerator)."""
    return tensor.numpy(force=tensor.device.type != "cpu")


def on_device(array: npt.NDArray[Any], device: torch.device) -> torch.Tensor:
    """A host array as a tensor on ``device`` (sharing its memory on the CPU)."""
    tensor = torch.from_numpy(array)
    return tensor if device.type == "cpu" else tensor.to(device)


def _starts(widths: tuple[int, ...]) -> list[int]:
    """Start column of each part when parts of these widths are laid side by side."""
    starts, start = [], 0
    for width in widths:
        starts.append(start)
        start += width
    return starts
