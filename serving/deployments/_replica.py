"""What every deployment of the Serve app shares: route annotations, replica identity, clock."""

from __future__ import annotations

import datetime as dt
import os
import typing
from collections.abc import Callable
from typing import Any

from ray import serve

#: Gauges are re-sent at least this often (Ray evicts series an emitter stopped reporting).
METRICS_REFRESH_S = 0.5


def typed_route(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Replace a route's string annotations by the objects they name.

    ``@serve.ingress`` pickles the FastAPI app while the class is still being defined, so its
    routes travel to the replica by value, with only the globals their code uses; names used
    only in annotations (request models, ``Header``) would be missing there.
    """
    fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)
    return fn


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def whoami() -> dict[str, Any]:
    """This replica's id and pid (tests use them to prove promote restarts nothing)."""
    return {"pid": os.getpid(), "replica": serve.get_replica_context().replica_id.unique_id}
