"""The sweep at scale: trials spread over a multi-node cluster, run by address against a real
``ray start --head`` instance, and submitted as a Ray job (Python client and ``ray job submit``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cluster import ClusterInfo
from cluster import shutdown
from cluster import submit_job
from tests.ray_setup import RayHead
from training.artifacts.registry import Registry
from training.pipelines.sweep import SearchSpace
from training.pipelines.sweep import SweepConfig
from training.pipelines.sweep import run_sweep

TINY = dataclasses.replace(
    SearchSpace(), k=(3,), covariance_type=("diag",), n_init=(1,), n_estimators=(10,)
)
CLI_ARGS = ["--num-samples", "2", "--k", "3", "--n-init", "1", "--covariance", "diag"]
CLI_ARGS += ["--hmm-n-iter", "10", "--seed", "1"]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for every sweep here: only the first one extracts."""
    return tmp_path_factory.mktemp("feature_cache")


def test_trials_spread_over_nodes(
    multinode_driver: ClusterInfo, synth_catalog: Path, tmp_path: Path, feature_cache: Path
) -> None:
    assert multinode_driver.nodes == 3
    # one actor per trial: a reused actor could take every (tiny, fast) trial before the other
    # nodes' actors have started on a loaded machine; the 3 one-CPU actors need 3 nodes
    cfg = SweepConfig(num_samples=3, seed=2, space=TINY, scheduler="fifo", hmm_n_iter=10,
                      reuse_actors=False)  # fmt: skip
    result = run_sweep(
        synth_catalog,
        cfg,
        out_dir=tmp_path,
        cache_dir=feature_cache,
        register=False,
        verbose=0,
    )
    nodes = {r["node_id"] for r in result.trials.to_pylist()}
    assert len(nodes) >= 2 and nodes <= set(multinode_driver.node_ids)


def test_sweep_by_address(
    ray_head: RayHead,
    synth_catalog: Path,
    tmp_path: Path,
    feature_cache: Path,
    no_ray_connection: None,
) -> None:
    cfg = SweepConfig(num_samples=2, seed=1, space=TINY, hmm_n_iter=10)
    reg = str(tmp_path / "reg")
    result = run_sweep(
        synth_catalog,
        cfg,
        out_dir=tmp_path,
        cache_dir=feature_cache,
        registry_root=reg,
        address=ray_head.gcs_address,
        verbose=0,
    )
    shutdown()
    assert Registry(reg).load("candidate").metadata["sweep_id"] == result.sweep_id


def test_sweep_as_ray_job(
    ray_head: RayHead, synth_catalog: Path, tmp_path: Path, feature_cache: Path
) -> None:
    """``nhmm sweep`` as a Ray job through :func:`cluster.jobs.submit_job`. (The ``ray job
    submit`` CLI path ships the project the same way: tests/cluster/test_jobs.py runs it.)"""
    reg = tmp_path / "reg"
    cmd = [
        "nhmm",
        "sweep",
        "--catalog",
        str(synth_catalog),
        *CLI_ARGS,
        "--registry",
        str(reg),
        "--out",
        str(tmp_path / "out"),
        "--cache",
        str(feature_cache),
    ]
    job = submit_job(cmd, address=ray_head.dashboard_url, timeout_s=300)
    assert job.status == "SUCCEEDED", job.logs[-3000:]
    logs = job.logs
    meta = Registry(str(reg)).load("candidate").metadata
    assert meta["sweep_id"].startswith("sweep-") and meta["sweep_id"] in logs
    assert meta["trial_id"] in {"t000", "t001"}
