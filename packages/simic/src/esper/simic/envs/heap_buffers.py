"""Keep a host's large activation buffers in the heap instead of fresh memory maps.

glibc serves every allocation above its mmap threshold (128 KiB at start, then the largest buffer freed so far) from
a new memory map and unmaps it on free, and it gives the heap's free top back to the kernel above its trim
threshold. PyTorch has no caching allocator on the CPU, so a transformer host whose logits take 0.5-4 MiB per batch
paid a page fault per touched page on every training step and validation batch: about a seventh of a `pydoc-bytes`
epoch (docs/performance.md). Fixed thresholds keep such buffers in the heap, where a freed buffer is reused. Nothing
computed changes; the process keeps up to ``TRIM_THRESHOLD_BYTES`` of freed heap for reuse.
"""

from __future__ import annotations

import ctypes
import platform

#: ``mallopt`` parameter numbers from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc's own dynamic adjustment uses on 64-bit machines.
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 256 * 2**20

_applied: bool | None = None


def keep_large_buffers_in_heap() -> bool:
    """Set glibc's thresholds once per process; True when they are in place (False without glibc, e.g. macOS or
    musl, where nothing is changed)."""
    global _applied
    if _applied is None:
        _applied = platform.libc_ver()[0] == "glibc" and _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    libc = ctypes.CDLL(None)
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
