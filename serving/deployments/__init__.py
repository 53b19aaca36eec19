"""The deployments of the Serve application (bound together by :func:`serving.app.build_app`).

:class:`Ingress` (FastAPI, ``/v1/infer`` answered in-replica), :class:`DriftServer`
(per-version drift monitors, auto-adaptation) and :class:`PartialFitServer` (guarded online-EM
children). The ingress's :mod:`~serving.deployments._guard` checks admin auth and the body size
before FastAPI reads a request. :func:`typed_route` is for any FastAPI ingress class (the bench's
echo uses it too).
"""

from __future__ import annotations

from serving.deployments._replica import typed_route
from serving.deployments.drift_server import DriftServer
from serving.deployments.ingress import Ingress
from serving.deployments.partial_fit_server import PartialFitServer

__all__ = ["DriftServer", "Ingress", "PartialFitServer", "typed_route"]
