"""Connect this process to Ray: a cluster by address, or an embedded local Ray by default.

The same command runs on a laptop and on a cluster: ``RAY_ADDRESS`` (or ``--address``) selects
a running cluster, which then receives the project code through :func:`project_runtime_env`;
without one, Ray starts embedded in this process (``address="local"``) with the machine's CPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Literal

from cluster.runtime_env import CREDENTIAL_VARS_ENV
from cluster.runtime_env import missing_credentials
from cluster.runtime_env import project_runtime_env
from cluster.runtime_env import redacted

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "nautilus-hmm"
LOCAL = "local"
# Set by the Ray job supervisor in a job's driver; the job's runtime_env already holds the code.
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"

Mode = Literal["local", "remote"]


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach Ray; the defaults give an embedded local Ray sized to the machine.

    ``address`` ``None`` means ``RAY_ADDRESS`` from the environment, else local.
    ``num_cpus`` / ``object_store_memory`` / ``include_dashboard`` apply to local Ray only.
    """

    address: str | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None
    namespace: str = DEFAULT_NAMESPACE
    include_dashboard: bool = False
    log_to_driver: bool = True

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"ClusterConfig.num_cpus must be >= 1, got {self.num_cpus}")
        if self.address is not None and not self.address.strip():
            raise ValueError("ClusterConfig.address must not be blank (use None for local)")


@dataclass(frozen=True)
class ClusterInfo:
    """What :func:`connect` connected to: GCS address, local/remote, live nodes and CPUs."""

    address: str
    mode: Mode
    nodes: int
    cpus: float
    namespace: str
    node_ids: tuple[str, ...]
    dashboard_url: str | None = None


def resolve_address(address: str | None, environ: dict[str, str] | None = None) -> str:
    """The Ray address to use: ``address`` if given, else ``RAY_ADDRESS``, else ``"local"``.

    >>> resolve_address(None, {})
    'local'
    >>> resolve_address(None, {"RAY_ADDRESS": " 10.0.0.5:6379 "})
    '10.0.0.5:6379'
    >>> resolve_address("ray://head:10001", {"RAY_ADDRESS": "10.0.0.5:6379"})
    'ray://head:10001'
    """
    env = os.environ if environ is None else environ
    chosen = address if address is not None else env.get("RAY_ADDRESS")
    chosen = (chosen or "").strip()
    return chosen or LOCAL


# (gcs address, mode) of the Ray this module's connect() set up, to tell local from remote later.
_OWN: tuple[str, Mode] | None = None


def connect(config: ClusterConfig | None = None, *, address: str | None = None) -> ClusterInfo:
    """Connect to Ray once per process (idempotent) and describe what is there.

    ``address`` overrides ``config.address``. Remote clusters get the project code through the
    runtime_env, unless this process is itself a Ray job driver (its job already carries it; a
    credential variable its submitter named but this node lacks is warned about).
    ``RAY_AUTH_MODE`` / token settings in the environment are left for Ray to apply.
    """
    global _OWN
    import ray

    cfg = config or ClusterConfig()
    target = resolve_address(address if address is not None else cfg.address)
    if ray.is_initialized():
        _check_same_cluster(target)
        return cluster_info(cfg.namespace)

    if target == LOCAL:
        num_cpus = cfg.num_cpus or os.cpu_count() or 1
        ray.init(
            address=LOCAL,
            num_cpus=num_cpus,
            object_store_memory=cfg.object_store_memory,
            namespace=cfg.namespace,
            include_dashboard=cfg.include_dashboard,
            log_to_driver=cfg.log_to_driver,
        )
        mode: Mode = "local"
    else:
        runtime_env = None if _JOB_CONFIG_ENV in os.environ else project_runtime_env()
        if runtime_env is not None:
            log.info("connecting to Ray at %s with runtime_env %s", target, redacted(runtime_env))
            names = runtime_env.get("env_vars", {}).get(CREDENTIAL_VARS_ENV)
            if names:
                log.info("credentials by name only (the cluster must supply them): %s", names)
        else:
            _warn_missing_credentials()
        ray.init(
            address=target,
            namespace=cfg.namespace,
            runtime_env=runtime_env,
            log_to_driver=cfg.log_to_driver,
        )
        mode = "remote"
    _OWN = (ray.get_runtime_context().gcs_address, mode)
    return cluster_info(cfg.namespace)


def cluster_info(namespace: str | None = None) -> ClusterInfo:
    """Describe the Ray cluster this process is connected to (error if not connected)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialized: call cluster.connect() first")
    alive = [n for n in ray.nodes() if n.get("Alive")]
    ctx = ray.get_runtime_context()
    return ClusterInfo(
        address=ctx.gcs_address,
        mode=_OWN[1] if _OWN and _OWN[0] == ctx.gcs_address else _mode_of_foreign_init(),
        nodes=len(alive),
        cpus=float(sum(n.get("Resources", {}).get("CPU", 0.0) for n in alive)),
        namespace=ctx.namespace or (namespace or DEFAULT_NAMESPACE),
        node_ids=tuple(sorted(n["NodeID"] for n in alive)),
        dashboard_url=dashboard_url(),
    )


def shutdown() -> None:
    """Disconnect from Ray (and stop an embedded local Ray); a no-op when not connected."""
    global _OWN
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _OWN = None


def _check_same_cluster(target: str) -> None:
    import ray

    if target in (LOCAL, "auto") or "://" in target:
        return
    current = ray.get_runtime_context().gcs_address
    if not same_endpoint(current, target, _local_hosts()):
        raise RuntimeError(
            f"Ray is already connected to {current}, not the requested address {target}; "
            "call cluster.shutdown() first"
        )


def same_endpoint(a: str, b: str, local_hosts: frozenset[str] = frozenset()) -> bool:
    """Whether two ``host:port`` addresses name the same GCS; this machine's names are equal.

    >>> local = frozenset({"127.0.0.1", "localhost", "10.0.0.7"})
    >>> same_endpoint("10.0.0.7:6379", "127.0.0.1:6379", local)
    True
    >>> same_endpoint("10.0.0.7:6379", "10.0.0.8:6379", local)
    False
    >>> same_endpoint("10.0.0.7:6379", "localhost:6380", local)
    False
    """
    host_a, _, port_a = a.rpartition(":")
    host_b, _, port_b = b.rpartition(":")
    if port_a != port_b:
        return False
    return host_a == host_b or (host_a in local_hosts and host_b in local_hosts)


def _local_hosts() -> frozenset[str]:
    import ray

    hosts = {"127.0.0.1", "localhost", "0.0.0.0", socket.gethostname()}
    with contextlib.suppress(Exception):
        hosts.add(ray.util.get_node_ip_address())
    return frozenset(hosts)


def _mode_of_foreign_init() -> Mode:
    """Mode of a Ray initialised outside :func:`connect` (e.g. a test's own ``ray.init``)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return "local" if node is not None and getattr(node, "ray_init_cluster", False) else "remote"


def _warn_missing_credentials() -> None:
    missing = missing_credentials()
    if missing:
        log.warning(
            "credential variables named by the job's submitter are not set here: %s "
            "(fine with an instance profile; else start the cluster with them)",
            ", ".join(missing),
        )


def dashboard_url() -> str | None:
    """The dashboard (job API) URL of the Ray this process is connected to, if it has one:
    as the cluster's GCS records it (a worker's own node info names the default port)."""
    import ray

    url = None
    with contextlib.suppress(Exception):  # client mode or not connected
        url = ray._private.services.get_webui_url_from_internal_kv()
    if not url:
        try:
            url = ray._private.worker.get_dashboard_url()
        except Exception:  # no dashboard
            return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"
