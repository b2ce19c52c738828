"""The one way tamiyo compiles Python to machine code: numba's ``njit``, typed for mypy.

Why compile at all (issue 19): the acting path runs once per epoch for a batch of a few dozen envs, so its array
code is made of many operations on a few hundred values each, and each numpy or torch call costs microseconds
of dispatch whatever its size. Feature encoding was some 80 such calls, 2-3x its network's forward on its own
(docs/performance.md). A compiled loop over envs, slots and seeds is one call.

Kernels are compiled on first use and cached on disk (``cache=True``: next to the source, or in numba's user
cache directory when that is read-only), so a process pays the compile once per code change, not per run. numba
sees a change only in the kernel's own file: a kernel and every compiled function it calls live in one module,
and after a change of the options below, delete the cached ``__pycache__/*.nbi`` and ``*.nbc`` files. They
run in nopython mode (no Python objects, no fallback to the interpreter) without ``fastmath``: IEEE arithmetic
in the order written, with the C library's elementary functions (``log1p``, ``exp``), and numpy's error model
(a division by zero gives inf or NaN, as in numpy, instead of raising). The feature encoding is therefore bit
for bit its numpy form; where a kernel replaces a torch operation (the rollout's log-softmax), torch's own
vectorized ``exp`` may round the last bit differently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

Function = TypeVar("Function", bound=Callable[..., Any])


def compiled(function: Function) -> Function:
    """``function`` compiled by numba (nopython, cached on disk, numpy's error model), with its own signature for
    mypy."""
    return cast(Function, numba.njit(cache=True, error_model="numpy")(function))
