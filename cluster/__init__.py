"""Ray runtime: connect (embedded local Ray by default, ``RAY_ADDRESS`` for a cluster),
the runtime_env that ships the project code, and Ray job submission."""

from __future__ import annotations

from cluster.connect import ClusterConfig
from cluster.connect import ClusterInfo
from cluster.connect import cluster_info
from cluster.connect import connect
from cluster.connect import dashboard_url
from cluster.connect import shutdown
from cluster.jobs import JobResult
from cluster.jobs import find_job
from cluster.jobs import python_command
from cluster.jobs import submit_job
from cluster.runtime_env import project_runtime_env

__all__ = [
    "ClusterConfig",
    "ClusterInfo",
    "JobResult",
    "cluster_info",
    "connect",
    "dashboard_url",
    "find_job",
    "project_runtime_env",
    "python_command",
    "shutdown",
    "submit_job",
]
