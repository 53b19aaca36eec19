"""Ray runtime: connect (embedded local Ray by default, ``RAY_ADDRESS`` for a cluster),
the runtime_env that ships the project code, and Ray job submission."""

from __future__ import annotations

from cluster.connect import ClusterConfig, ClusterInfo, cluster_info, connect, shutdown
from cluster.jobs import JobResult, submit_job
from cluster.runtime_env import project_runtime_env

__all__ = [
    "ClusterConfig",
    "ClusterInfo",
    "JobResult",
    "cluster_info",
    "connect",
    "project_runtime_env",
    "shutdown",
    "submit_job",
]
