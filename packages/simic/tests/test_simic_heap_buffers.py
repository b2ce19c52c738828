"""Large host buffers stay in the heap: after ``keep_large_buffers_in_heap`` a 4 MiB tensor (a pydoc-bytes
validation batch's logits) is carved from the process heap, where a freed buffer is reused, not from a memory map
of its own that is unmapped on free and faults in afresh page by page next time.

Where glibc puts such a buffer by default depends on its dynamic threshold and so on the process's history, so the
comparison pins the threshold at glibc's starting value, in a process of its own."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from esper.simic.envs import heap_buffers

_IN_HEAP = """
import ctypes, sys, torch
from esper.simic.envs.heap_buffers import M_MMAP_THRESHOLD, keep_large_buffers_in_heap

if sys.argv[1] == "kept":
    applied = keep_large_buffers_in_heap()
else:  # glibc's starting threshold, held fixed
    applied = bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 * 1024))
buffers = [torch.empty(64, 64, 256) for _ in range(3)]
with open("/proc/self/maps") as maps:
    heap = next(line.split()[0] for line in maps if line.rstrip().endswith("[heap]"))
low, high = (int(end, 16) for end in heap.split("-"))
print(applied, all(low <= buffer.data_ptr() < high for buffer in buffers))
"""


def _large_buffers_in_heap(mode: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", _IN_HEAP, mode], capture_output=True, text=True, check=True, timeout=120
    )
    applied, in_heap = result.stdout.split()
    assert applied == "True"
    return in_heap == "True"


@pytest.mark.subprocess
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_large_buffers_come_from_the_heap_not_a_map_of_their_own() -> None:
    assert not _large_buffers_in_heap("mapped")
    assert _large_buffers_in_heap("kept")


def test_without_glibc_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap_buffers, "_applied", None)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(heap_buffers, "_set_thresholds", lambda: pytest.fail("mallopt called without glibc"))
    assert heap_buffers.keep_large_buffers_in_heap() is False
