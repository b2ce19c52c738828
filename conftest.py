"""Test-session settings shared by every member's tests.

One torch thread per test process: CI runs the suite on 2 cores with two pytest workers, and intra-op threads
on top of that oversubscribe the cores (measured: a 5x slowdown of small-model tests under contention).
"""

import torch

torch.set_num_threads(1)
