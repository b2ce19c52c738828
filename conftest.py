"""Test-session settings shared by every member's tests.

One torch thread per test process: CI runs the suite on 2 cores with two pytest workers, and intra-op threads
on top of that oversubscribe the cores (measured: a 5x slowdown of small-model tests under contention).

Ray (the optional `ray` group): the tests that need it are marked `ray` and share one Ray cluster of three nodes
on this machine per session (starting Ray costs tens of seconds on 2 busy cores). They are put in one xdist group
(`--dist loadgroup` in the pytest options), so one worker starts the cluster; without Ray installed they skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch

# Read by Ray when it is imported (here, in the CLI processes the tests start, and in every Ray process, which
# inherit the environment): no usage statistics, no rebuilding of the uv project per worker, and every node of
# the one-machine test cluster addresses itself by loopback, so no Ray traffic uses the machine's network address.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

torch.set_num_threads(1)

#: Why the Ray test cluster did not start, once it failed: pytest sets a failed session fixture up again for every
#: test that uses it, and each attempt would wait out Ray's start-up timeout.
_RAY_CLUSTER_FAILURE: list[str] = []


@dataclass(frozen=True)
class RayTestCluster:
    address: str
    head_node_id: str
    #: A custom resource only the two env nodes declare (one unit each).
    env_node_resource: str = "esper_test_env_node"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayTestCluster]:
    """A head node with 2 CPUs (where the test process connects as the driver) and two env nodes with 1 CPU and
    one ``env_node_resource`` each: actors that ask for that resource can only run on the env nodes, one each."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if _RAY_CLUSTER_FAILURE:
        pytest.fail(f"the Ray test cluster did not start: {_RAY_CLUSTER_FAILURE[0]}")
    loopback = {"node_ip_address": "127.0.0.1"}
    env_node = RayTestCluster.env_node_resource
    cluster = Cluster()
    try:
        try:
            cluster.add_node(num_cpus=2, include_dashboard=False, **loopback)
            for _ in range(2):
                cluster.add_node(num_cpus=1, resources={env_node: 1}, **loopback)
            ray.init(address=cluster.address, configure_logging=False, log_to_driver=False)
        except Exception as error:  # Ray raises a bare Exception when a node does not come up in time
            _RAY_CLUSTER_FAILURE.append(f"{type(error).__name__}: {error}")
            raise
        yield RayTestCluster(cluster.address, ray.get_runtime_context().get_node_id())
    finally:
        ray.shutdown()
        cluster.shutdown()
