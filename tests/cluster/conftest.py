"""Real Ray clusters for the cluster tests (and the sweep's cluster tests, added beside them).

``ray_head``: a separate ``ray start --head`` instance (:func:`tests.ray_setup.start_ray_head`).
``ray_multinode``: a ``ray.cluster_utils.Cluster`` head + 2 worker nodes of 1 CPU each.
``multinode_driver``: this process connected to ``ray_multinode`` for one test.
Both instances start lazily, once, and are stopped even when tests fail, after the last test
of this package (package scope: they do not idle beside the rest of the suite).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cluster import ClusterInfo
from tests.ray_setup import WORKER_NODES
from tests.ray_setup import RayHead
from tests.ray_setup import free_port
from tests.ray_setup import kill_processes
from tests.ray_setup import process_table
from tests.ray_setup import start_ray_head
from tests.ray_setup import with_descendants


@pytest.fixture(scope="package")
def ray_head() -> Iterator[RayHead]:
    """A real ``ray start --head`` instance (2 CPUs, dashboard) for by-address and job tests."""
    head = start_ray_head()
    try:
        yield head
    finally:
        head.stop()
    leftovers = head.pids()
    assert not leftovers, f"Ray processes of {head.temp_dir} survived teardown: {leftovers}"


@pytest.fixture(scope="package")
def ray_multinode() -> Iterator[object]:
    """A ``ray.cluster_utils.Cluster``: a head and two worker nodes, 1 CPU each, on this host."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "dashboard_agent_listen_port": free_port(),
            "object_store_memory": 100 * 1024 * 1024,
        },
    )
    try:
        for _ in range(WORKER_NODES):
            cluster.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
        cluster.wait_for_nodes(timeout=60)
        yield cluster
    finally:
        _disconnect()
        roots = {
            proc.process.pid
            for node in [*cluster.worker_nodes, cluster.head_node]
            if node is not None
            for infos in node.all_processes.values()
            for proc in infos
        }
        started = with_descendants(roots, process_table())
        cluster.shutdown()
        # Agents and workers of a node can outlive its raylet; end exactly those we saw.
        kill_processes(lambda: started)


@pytest.fixture
def multinode_driver(ray_multinode: object) -> Iterator[ClusterInfo]:
    """This process connected to ``ray_multinode`` with ``cluster.connect`` for one test
    (yields the ``ClusterInfo``)."""
    from cluster import connect

    _disconnect()
    try:
        yield connect(address=ray_multinode.address)  # type: ignore[attr-defined]
    finally:
        _disconnect()


@pytest.fixture
def no_ray_connection() -> Iterator[None]:
    """Start and end a test with this process disconnected from any Ray."""
    _disconnect()
    try:
        yield
    finally:
        _disconnect()


def _disconnect() -> None:
    import ray

    from cluster import shutdown

    if ray.is_initialized():
        shutdown()
