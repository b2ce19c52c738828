"""Large host buffers stay in the heap: after ``keep_large_buffers_in_heap`` a freed 4 MiB tensor is reused rather
than mapped afresh, so allocating it again costs no page faults (it cost hundreds before)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from esper.simic.envs import heap_buffers

_FAULTS_PER_ALLOCATION = """
import resource, torch
from esper.simic.envs.heap_buffers import keep_large_buffers_in_heap

def faults_per_allocation(n=20):
    for _ in range(3):  # warm up whatever the first allocations map
        torch.empty(64, 64, 256).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        torch.empty(64, 64, 256).fill_(1.0)  # a pydoc-bytes validation batch's logits: 4 MiB
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n

print(faults_per_allocation(), keep_large_buffers_in_heap(), faults_per_allocation())
"""


@pytest.mark.subprocess
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_a_freed_large_buffer_is_reused_without_page_faults() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FAULTS_PER_ALLOCATION], capture_output=True, text=True, check=True, timeout=120
    )
    before, applied, after = result.stdout.split()
    assert applied == "True"
    assert float(before) > 100  # a fresh memory map each time: a fault per touched page
    assert float(after) < 8


def test_without_glibc_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap_buffers, "_applied", None)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(heap_buffers, "_set_thresholds", lambda: pytest.fail("mallopt called without glibc"))
    assert heap_buffers.keep_large_buffers_in_heap() is False
