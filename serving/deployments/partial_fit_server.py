"""``PartialFitServer``: guarded online-EM children of registry versions.

Serves ``POST /v1/partial_fit`` (through the ingress) and the drift-triggered adaptations of
:class:`~serving.deployments.drift_server.DriftServer`; one replica, so registrations of
children are never raced by a second fitter.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from serving.adapt import fit_child
from serving.errors import error_dict
from serving.metrics import FitMetrics
from training.artifacts.registry import Registry
from training.errors import NhmmError

__all__ = ["PartialFitServer"]


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class PartialFitServer:
    """Guarded online-EM children of registry versions (``POST /v1/partial_fit``, auto-adapt)."""

    def __init__(self, registry_root: str, kl_threshold: float | None = None) -> None:
        # kl_threshold: accepted from older app bindings, unused since a child keeps its
        # parent's drift reference (the training histograms)
        self._registry = Registry(registry_root)
        self._metrics = FitMetrics()

    async def fit(
        self,
        parent_ref: str,
        X: Any,
        schema_version: str | None,
        alias: str | None,
        only_if_alias_at_parent: bool = False,
        trigger: str = "manual",
        extra_metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A :class:`~serving.adapt.FitOutcome` as a dict, or ``{"error": {status, field,
        detail}}`` (errors travel back to the ingress as data: status by class)."""
        try:
            out = await asyncio.to_thread(
                fit_child,
                self._registry,
                parent_ref,
                X,
                schema_version,
                alias,
                only_if_alias_at_parent,
                extra_metadata,
            )
        except NhmmError as exc:
            return {"error": error_dict(exc, field="model")}
        self._metrics.observe(out.accepted, trigger, out.fit_ms)
        return out.to_dict()
