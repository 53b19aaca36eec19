"""connect(): embedded local Ray by default, a running cluster by address (``ray start --head``
instance), and a 3-node ``Cluster`` where tasks and Tune trials land on distinct nodes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import ray
from ray import tune

import cluster
from cluster import ClusterConfig
from cluster import connect
from cluster.connect import resolve_address

pytestmark = pytest.mark.slow


def test_resolve_address_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert resolve_address(None) == "10.1.2.3:6379"
    assert resolve_address("127.0.0.1:7000") == "127.0.0.1:7000"
    monkeypatch.setenv("RAY_ADDRESS", "   ")
    assert resolve_address(None) == "local"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="num_cpus"):
        ClusterConfig(num_cpus=0)
    with pytest.raises(ValueError, match="address"):
        ClusterConfig(address="  ")


def test_cluster_info_needs_a_connection(no_ray_connection: None) -> None:
    with pytest.raises(RuntimeError, match=r"cluster\.connect\(\)"):
        cluster.cluster_info()


def test_local_embedded_ray_uses_the_machines_cpus(
    monkeypatch: pytest.MonkeyPatch, no_ray_connection: None
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    info = connect()
    assert info.mode == "local"
    assert info.nodes == 1
    assert info.cpus == float(os.cpu_count() or 1)
    assert info.namespace == "nautilus-hmm"
    assert ray.get_runtime_context().namespace == "nautilus-hmm"

    @ray.remote(num_cpus=0.5)
    def square(x: int) -> int:
        return x * x

    assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    again = connect(ClusterConfig(num_cpus=1))  # idempotent: same Ray, config not re-applied
    assert again.address == info.address and again.cpus == info.cpus
    with pytest.raises(RuntimeError, match="already connected"):
        connect(address="127.0.0.1:1")
    cluster.shutdown()
    assert not ray.is_initialized()
    cluster.shutdown()  # no-op when disconnected


@ray.remote(num_cpus=0.5)
def _where_is_the_code() -> dict[str, str]:
    import training

    return {
        "cluster": cluster.__file__,
        "training": training.__file__,
        "registry": os.environ.get("NHMM_REGISTRY", ""),
        "node": ray.get_runtime_context().get_node_id(),
    }


def test_connect_by_ray_address_ships_the_project(
    ray_head: object, monkeypatch: pytest.MonkeyPatch, no_ray_connection: None
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", ray_head.gcs_address)  # type: ignore[attr-defined]
    monkeypatch.setenv("NHMM_REGISTRY", "s3://nhmm-test/registry")
    info = connect()
    assert info.mode == "remote"
    assert info.address.endswith(f":{ray_head.ports['port']}")  # type: ignore[attr-defined]
    assert (info.nodes, info.cpus) == (1, 2.0)
    assert info.dashboard_url == ray_head.dashboard_url  # type: ignore[attr-defined]
    seen = ray.get([_where_is_the_code.remote() for _ in range(4)])
    temp_dir = str(ray_head.temp_dir)  # type: ignore[attr-defined]
    for where in seen:
        # Imported from the uploaded working_dir inside that instance, not from this checkout.
        assert where["cluster"].startswith(temp_dir) and "working_dir_files" in where["cluster"]
        assert where["training"].startswith(temp_dir)
        assert where["registry"] == "s3://nhmm-test/registry"
        assert where["node"] == info.node_ids[0]


def test_address_argument_beats_ray_address(
    ray_head: object, monkeypatch: pytest.MonkeyPatch, no_ray_connection: None
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    info = connect(address=ray_head.gcs_address)  # type: ignore[attr-defined]
    assert info.mode == "remote" and info.cpus == 2.0
    assert ray.get(_where_is_the_code.remote())["node"] == info.node_ids[0]
    port = ray_head.ports["port"]  # type: ignore[attr-defined]
    assert connect(address=f"localhost:{port}") == info  # same GCS under another local name
    with pytest.raises(RuntimeError, match="already connected"):
        connect(address=f"127.0.0.1:{port + 1}")


@ray.remote(num_cpus=0)
class _Barrier:
    """Counts arrivals; trials wait here until all are running at once."""

    def __init__(self) -> None:
        self.arrived: list[str] = []

    def arrive(self, who: str) -> int:
        self.arrived.append(who)
        return len(self.arrived)

    def count(self) -> int:
        return len(self.arrived)


def _trial(config: dict, barrier: object, parties: int) -> None:
    node = ray.get_runtime_context().get_node_id()
    ray.get(barrier.arrive.remote(node))  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while ray.get(barrier.count.remote()) < parties:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError("trials never ran concurrently")
        time.sleep(0.1)
    tune.report({"score": config["x"] * 2, "node": node})


def test_tasks_and_tune_trials_spread_over_three_nodes(
    multinode_driver: cluster.ClusterInfo, tmp_path: Path
) -> None:
    """SPREAD tasks reach every node. Tune: 0.6 CPU per trial on 1-CPU nodes, so three trials
    can only run together on three distinct nodes, and the barrier makes them run together."""
    info = multinode_driver
    assert (info.mode, info.nodes, info.cpus) == ("remote", 3, 3.0)

    @ray.remote(num_cpus=0.25, scheduling_strategy="SPREAD")
    def node_id() -> str:
        time.sleep(0.1)
        return ray.get_runtime_context().get_node_id()

    seen = ray.get([node_id.remote() for _ in range(9)])
    assert set(seen) == set(info.node_ids)
    assert len(set(seen)) == 3

    barrier = _Barrier.remote()
    trainable = tune.with_resources(
        tune.with_parameters(_trial, barrier=barrier, parties=3), {"cpu": 0.6}
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2, 3])},
        tune_config=tune.TuneConfig(max_concurrent_trials=3),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="spread", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    rows = sorted((r.config["x"], r.metrics["score"], r.metrics["node"]) for r in results)
    assert [(x, score) for x, score, _ in rows] == [(1, 2), (2, 4), (3, 6)]
    assert {node for *_, node in rows} == set(info.node_ids)
