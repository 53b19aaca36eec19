"""A fresh embedded local Ray for tests (the training package's feature cache and sweep tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["local_ray_session"]


@contextlib.contextmanager
def local_ray_session(num_cpus: int = 2) -> Iterator[None]:
    """Shut down any Ray this process holds, start a local one, shut it down afterwards."""
    from cluster import ClusterConfig
    from cluster import connect
    from cluster import shutdown

    shutdown()
    connect(ClusterConfig(num_cpus=num_cpus))
    try:
        yield
    finally:
        shutdown()
