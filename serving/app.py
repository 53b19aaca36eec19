"""The Ray Serve application: its arguments and the bound deployments.

Three deployments (:mod:`serving.deployments`): the FastAPI ``Ingress`` answers ``/v1/infer``
itself from a multiplexed bundle cache (no second hop on the hot path) and feeds every served
row, off the hot path, to the ``DriftServer`` (per-version drift monitors); with ``auto_adapt``
a drift trigger makes the ``DriftServer`` ask the ``PartialFitServer`` for a guarded online-EM
child, promoted to the alias being served if the held-out guard passes. ``PartialFitServer``
also serves ``POST /v1/partial_fit``.

``serve run serving.app:build_app registry=/path/to/store`` or ``serve deploy
serving/serve_config.yaml``; the registry root is ``args.registry`` when a config names one, else
``$NHMM_REGISTRY`` of the process that builds the app (the shipped config names none). Set
``admin_token`` (or ``$NHMM_ADMIN_TOKEN``) to require ``Authorization: Bearer <token>`` on
promote, rollback, partial_fit and train. ``max_body_bytes`` caps a request body (413).
``train_command`` (default: this replica's interpreter running ``-m training.cli sweep``) is the
``/v1/train`` job's entrypoint; name the head's interpreter there when it differs.

The drift monitor's settings are one nested ``drift:`` mapping (a :class:`DriftConfig`); the flat
keys of earlier configs (``drift_window``, ``drift_min_samples``, ``kl_threshold``,
``adwin_delta``, ``loglik_drop``) are still accepted and folded into it — ``serve run k=v`` can
only pass flat keys.

>>> args = AppArgs(drift_window=400, kl_threshold=0.3)
>>> args.drift.window, args.drift.min_samples, args.drift.kl_threshold
(400, 200, 0.3)
>>> AppArgs(drift={"window": 100}).drift.min_samples  # capped at the window, as it always was
100
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import TypeAdapter
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator
from ray import serve

from serving.deployments import DriftServer
from serving.deployments import Ingress
from serving.deployments import PartialFitServer
from serving.drift import DriftConfig
from training.artifacts.registry import Registry

__all__ = ["FLAT_DRIFT_KEYS", "AppArgs", "build_app"]

#: The flat ``args`` keys of earlier configs and the :class:`DriftConfig` field each sets.
FLAT_DRIFT_KEYS: dict[str, str] = {
    "drift_window": "window",
    "drift_min_samples": "min_samples",
    "kl_threshold": "kl_threshold",
    "adwin_delta": "adwin_delta",
    "loglik_drop": "loglik_drop",
}
MIN_DRIFT_WINDOW = 10
_INT = TypeAdapter(int)


class AppArgs(BaseModel):
    """Arguments of :func:`build_app` (``args:`` in serve_config.yaml, ``k=v`` for serve run)."""

    model_config = ConfigDict(extra="forbid")

    registry: str | None = None
    max_batch: int = Field(default=256, ge=1)
    alias_ttl_s: float = Field(default=0.25, ge=0.0)
    ingress_replicas: int = Field(default=1, ge=1)
    ingress_num_cpus: float = Field(default=0.25, gt=0.0)
    drift_num_cpus: float = Field(default=0.1, gt=0.0)
    fit_num_cpus: float = Field(default=0.1, gt=0.0)
    admin_token: str | None = None
    max_fit_rows: int = Field(default=100_000, ge=10)
    max_body_bytes: int = Field(default=16 * 2**20, ge=1024)
    # drift monitoring and auto-adaptation
    drift: DriftConfig = Field(default_factory=DriftConfig)
    auto_adapt: bool = False
    adapt_confidence_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    adapt_cooldown_s: float = Field(default=60.0, ge=0.0)
    adapt_min_rows: int = Field(default=300, ge=10)  # rows since the trigger to refit on
    drift_flush_s: float = Field(default=0.25, gt=0.0)
    drift_backlog: int = Field(default=100_000, ge=1)
    # POST /v1/train
    jobs_address: str | None = None
    train_command: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _nest_drift_keys(cls, data: Any) -> Any:
        """Fold the flat drift keys into ``drift``; cap ``min_samples`` at ``window``."""
        if not isinstance(data, dict):
            return data
        flat = {FLAT_DRIFT_KEYS[k]: v for k, v in data.items() if k in FLAT_DRIFT_KEYS}
        nested = data.get("drift", {})
        if isinstance(nested, DriftConfig):
            nested = dataclasses.asdict(nested)
        if not isinstance(nested, dict) or not (flat or nested):
            return data
        both = sorted(flat.keys() & nested.keys())
        if both:
            raise ValueError(f"drift: {both} given both flat and under 'drift'")
        drift = {**nested, **flat}
        _cap_min_samples(drift)
        return {**{k: v for k, v in data.items() if k not in FLAT_DRIFT_KEYS}, "drift": drift}

    @field_validator("drift")
    @classmethod
    def _window_holds_a_fit(cls, drift: DriftConfig) -> DriftConfig:
        if drift.window < MIN_DRIFT_WINDOW:
            raise ValueError(f"drift.window must be >= {MIN_DRIFT_WINDOW}, got {drift.window}")
        return drift


def _cap_min_samples(drift: dict[str, Any]) -> None:
    """``min_samples`` at most ``window`` (a small window with the default 200 works)."""
    default = DriftConfig()
    with contextlib.suppress(ValidationError):  # a bad value: the field validation names it
        window = _INT.validate_python(drift.get("window", default.window))
        wanted = _INT.validate_python(drift.get("min_samples", default.min_samples))
        drift["min_samples"] = min(wanted, window)


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The bound application for ``serve run``/``serve deploy`` (see :class:`AppArgs`)."""
    parsed = AppArgs(**(args or {}))
    root = parsed.registry or os.environ.get("NHMM_REGISTRY")
    if not root:
        raise ValueError("registry: set args.registry or NHMM_REGISTRY to the model store root")
    root = Registry(root).root  # absolute: replicas may run in another working directory
    fit = PartialFitServer.options(ray_actor_options={"num_cpus": parsed.fit_num_cpus}).bind(
        root, parsed.drift.kl_threshold
    )
    drift = DriftServer.options(ray_actor_options={"num_cpus": parsed.drift_num_cpus}).bind(
        fit, root, parsed
    )
    return Ingress.options(
        num_replicas=parsed.ingress_replicas,
        ray_actor_options={"num_cpus": parsed.ingress_num_cpus},
    ).bind(drift, fit, root, parsed)
