"""Load-independent measures of work: how many times a module runs, how many torch operators and how many Python
function calls a piece of work makes. A busy neighbour or a slower CPU changes none of them, so CI can gate on
them where a wall-clock ratio would flake; a regression that repeats work (an extra validation pass, the act
path run three times) multiplies them."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.timing import Work


class _OperatorCounter(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts every aten operator that reaches the dispatcher (below autograd, after decompositions). torch
    leaves TorchDispatchMode untyped, hence the ignores."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.count = 0

    def __torch_dispatch__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.count += 1
        return func(*args, **(kwargs or {}))


def torch_operators(work: Work, calls: int = 1) -> float:
    """Torch operators per execution of ``work`` (mean over ``calls``)."""
    counter = _OperatorCounter()
    with counter:
        for _ in range(calls):
            work()
    return counter.count / calls


def python_calls(work: Work, calls: int = 1) -> float:
    """Python function calls (frames entered) per execution of ``work`` (mean over ``calls``)."""
    count = 0

    def profile(_frame: types.FrameType, event: str, _arg: object) -> None:
        nonlocal count
        if event == "call":
            count += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        for _ in range(calls):
            work()
    finally:
        sys.setprofile(previous)
    return count / calls


@contextmanager
def module_calls(module: nn.Module) -> Iterator[list[int]]:
    """Inside the block, the list holds the batch size of every forward of ``module`` (a hook that changes
    nothing; removed on exit)."""
    sizes: list[int] = []

    def hook(_module: nn.Module, inputs: tuple[Any, ...], _output: object) -> None:
        sizes.append(int(inputs[0].shape[0]))

    handle = module.register_forward_hook(hook)
    try:
        yield sizes
    finally:
        handle.remove()
