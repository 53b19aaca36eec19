"""The Ray Serve application: a FastAPI ingress and a multiplexed model deployment.

The ingress resolves ``model`` (alias, version id or number) through the registry on every
request (a small alias-file read, cached for ``alias_ttl_s`` and dropped on promote/rollback)
and forwards the resolved version id with ``handle.options(multiplexed_model_id=...)``; the
model replicas keep up to ``MAX_MODELS_PER_REPLICA`` verified bundles loaded. Promoting moves
an alias only, so ``live`` changes without restarting any replica.

``serve run serving.app:build_app registry=/path/to/store`` or ``serve deploy
serving/serve_config.yaml``; the registry root is ``args.registry`` else ``$NHMM_REGISTRY``.
Set ``admin_token`` (or ``$NHMM_ADMIN_TOKEN``) to require ``Authorization: Bearer <token>`` on
promote/rollback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
import typing
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.drift import DriftMonitor
from serving.model import InferenceError, InferenceModel, SchemaVersionMismatch
from serving.schemas import (
    AliasResponse,
    BatchInferResponse,
    InferRequest,
    InferResponse,
    ModelInfo,
    ModelsResponse,
    PartialFitRequest,
    PartialFitResponse,
    PromoteRequest,
)
from training.bundle import BundleError
from training.online import partial_fit as online_partial_fit
from training.registry import Registry, RegistryError

MAX_MODELS_PER_REPLICA = 4


class AppArgs(BaseModel):
    """Arguments of :func:`build_app` (``args:`` in serve_config.yaml, ``k=v`` for serve run)."""

    model_config = ConfigDict(extra="forbid")

    registry: str | None = None
    max_batch: int = Field(default=256, ge=1)
    alias_ttl_s: float = Field(default=0.25, ge=0.0)
    model_replicas: int = Field(default=1, ge=1)
    model_num_cpus: float = Field(default=0.25, gt=0.0)
    ingress_replicas: int = Field(default=1, ge=1)
    ingress_num_cpus: float = Field(default=0.1, gt=0.0)
    admin_token: str | None = None
    max_fit_rows: int = Field(default=100_000, ge=10)


def _typed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Replace string annotations by the objects: Serve rebuilds the routes in the replica from
    a by-value copy of the class whose globals lack names used only in annotations."""
    fn.__annotations__ = typing.get_type_hints(fn, include_extras=True)
    return fn


def _error(status: int, detail: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "field": field})


def _loc_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class ModelServer:
    """Runs :class:`InferenceModel` for the version named by the multiplexed model id."""

    def __init__(self, registry_root: str) -> None:
        self._registry = Registry(registry_root)
        self._monitors: dict[str, DriftMonitor] = {}

    def _monitor(self, model: InferenceModel) -> DriftMonitor:
        mon = self._monitors.get(model.version)
        if mon is None:
            mon = self._monitors[model.version] = DriftMonitor(model.bundle)
        return mon

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str) -> InferenceModel:
        bundle = await asyncio.to_thread(self._registry.load, model_id)
        return InferenceModel(bundle, version=model_id)

    async def infer(self, schema_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Results for ``items`` in order, or ``{"error": {...}}`` naming the first bad field."""
        model = await self.get_model(serve.get_multiplexed_model_id())
        results = []
        for i, item in enumerate(items):
            try:
                r = model.infer(item["features"], item["prev_log_posterior"], schema_version)
            except InferenceError as exc:
                field = exc.field if len(items) == 1 else f"items[{i}].{exc.field}"
                if exc.field == "schema_version":
                    field = exc.field
                return {"error": {"status": exc.status, "field": field, "detail": exc.message}}
            results.append(r)
        monitor = self._monitor(model)
        for item, r in zip(items, results, strict=True):
            monitor.update(np.asarray(item["features"], dtype=np.float64), r.loglik)
        return {"model_version": model.version, "results": [r.to_dict() for r in results]}

    async def drift(self) -> dict[str, Any]:
        """This replica's drift report for the multiplexed model version."""
        model = await self.get_model(serve.get_multiplexed_model_id())
        report = dataclasses.asdict(self._monitor(model).report())
        return {"model_version": model.version, **report, **self.whoami()}

    def whoami(self) -> dict[str, Any]:
        """Replica id and pid (tests use them to prove promote restarts nothing)."""
        return {"pid": os.getpid(), "replica": serve.get_replica_context().replica_id.unique_id}


api = FastAPI(
    title="nautilus-hmm inference",
    description="Causal HMM regime inference + policy head, versioned through the registry.",
    version="1",
)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _loc_field(first.get("loc", ("body",)))
    return JSONResponse(
        status_code=422,
        content={
            "detail": f"{field}: {first.get('msg')}",
            "field": field,
            "errors": [
                {"field": _loc_field(e.get("loc", ())), "msg": str(e.get("msg"))}
                for e in errors[:20]
            ],
        },
    )


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class Ingress:
    """HTTP API: ``/v1/infer``, ``/v1/models``, promote/rollback, ``/v1/drift``, ``/healthz``."""

    def __init__(self, model: DeploymentHandle, registry_root: str, args: dict[str, Any]) -> None:
        self._model = model
        self._args = AppArgs(**args)
        self._registry = Registry(registry_root)
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _resolve(self, ref: str) -> str:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(ref)
        if hit is not None and now - hit[0] < self._args.alias_ttl_s:
            return hit[1]
        version = self._registry.resolve(ref)
        with self._lock:
            self._cache[ref] = (now, version)
        return version

    def _check_admin(self, authorization: str | None) -> JSONResponse | None:
        token = self._args.admin_token or os.environ.get("NHMM_ADMIN_TOKEN")
        if token and authorization != f"Bearer {token}":
            return _error(401, "admin token required (Authorization: Bearer ...)", "authorization")
        return None

    @api.post(
        "/v1/infer",
        response_model=InferResponse | BatchInferResponse,
        responses={404: {}, 409: {}, 413: {}, 422: {}},
    )
    @_typed
    async def infer(self, req: InferRequest) -> Any:
        """One step (``features``) or a batch (``items``) against ``model`` (default ``live``)."""
        if req.items is not None and len(req.items) > self._args.max_batch:
            return _error(413, f"batch of {len(req.items)} > max {self._args.max_batch}", "items")
        try:
            version = await asyncio.to_thread(self._resolve, req.model)
        except RegistryError as exc:
            return _error(404, str(exc), "model")
        out = await self._model.options(multiplexed_model_id=version).infer.remote(
            req.schema_version, req.payload_items()
        )
        if "error" in out:
            e = out["error"]
            return _error(int(e["status"]), f"{e['field']}: {e['detail']}", e["field"])
        if req.is_batch:
            return out
        return out["results"][0]

    @api.get("/v1/models", response_model=ModelsResponse)
    @_typed
    async def models(self) -> ModelsResponse:
        """Every registry version with its aliases."""
        infos = await asyncio.to_thread(self._registry.versions)
        aliases = await asyncio.to_thread(self._registry.aliases)
        return ModelsResponse(
            aliases=aliases,
            versions=[
                ModelInfo(
                    version=i.version,
                    number=i.number,
                    bundle_id=i.bundle_id,
                    created_at=i.created_at,
                    parent=i.parent,
                    aliases=list(i.aliases),
                    metrics=i.metrics,
                )
                for i in infos
            ],
        )

    @api.post("/v1/models/{version}/promote", response_model=AliasResponse)
    @_typed
    async def promote(
        self,
        version: str,
        body: PromoteRequest | None = None,
        authorization: str | None = Header(default=None),
    ) -> Any:
        """Point ``alias`` (default ``live``) at ``version`` after verifying its bundle."""
        denied = self._check_admin(authorization)
        if denied is not None:
            return denied
        alias = (body or PromoteRequest()).alias
        try:
            previous = await asyncio.to_thread(self._registry.aliases)
            target = await asyncio.to_thread(self._registry.promote, version, alias)
        except RegistryError as exc:
            status = 422 if "invalid alias" in str(exc) else 404
            return _error(status, str(exc), "alias" if status == 422 else "version")
        except BundleError as exc:
            return _error(409, f"version {version}: {exc}", "version")
        with self._lock:
            self._cache.clear()
        return AliasResponse(alias=alias, version=target, previous=previous.get(alias))

    @api.post("/v1/aliases/{alias}/rollback", response_model=AliasResponse)
    @_typed
    async def rollback(self, alias: str, authorization: str | None = Header(default=None)) -> Any:
        """Point ``alias`` back at its previous version."""
        denied = self._check_admin(authorization)
        if denied is not None:
            return denied
        try:
            previous = await asyncio.to_thread(self._registry.aliases)
            target = await asyncio.to_thread(self._registry.rollback, alias)
        except RegistryError as exc:
            return _error(409 if "roll back" in str(exc) else 404, str(exc), "alias")
        with self._lock:
            self._cache.clear()
        return AliasResponse(alias=alias, version=target, previous=previous.get(alias))

    @api.post("/v1/partial_fit", response_model=PartialFitResponse)
    @_typed
    async def partial_fit(
        self, req: PartialFitRequest, authorization: str | None = Header(default=None)
    ) -> Any:
        """Online-EM update of ``model``'s HMM from ``X``; if the held-out guard accepts it,
        register the child (parent recorded) under ``alias``. Nothing is overwritten."""
        denied = self._check_admin(authorization)
        if denied is not None:
            return denied
        if len(req.X) > self._args.max_fit_rows:
            return _error(413, f"{len(req.X)} rows > max {self._args.max_fit_rows}", "X")
        try:
            return await asyncio.to_thread(self._partial_fit, req)
        except RegistryError as exc:
            return _error(404, str(exc), "model")
        except InferenceError as exc:
            return _error(exc.status, str(exc), exc.field)

    def _partial_fit(self, req: PartialFitRequest) -> PartialFitResponse:
        parent = self._registry.resolve(req.model)
        bundle = self._registry.load(parent)
        schema = bundle.feature_schema()
        if req.schema_version != schema.version:
            raise SchemaVersionMismatch(
                "schema_version", f"{req.schema_version!r} != model schema {schema.version!r}"
            )
        d = len(schema.names)
        for i, row in enumerate(req.X):
            if len(row) != d:
                raise InferenceError(f"X[{i}]", f"expected {d} values, got {len(row)}")
        X = np.asarray(req.X, dtype=np.float64)
        try:
            result, _ = online_partial_fit(bundle.hmm_params(), X)
        except ValueError as exc:
            raise InferenceError("X", str(exc)) from exc
        version = None
        if result.accepted:
            inherited = {
                k: v
                for k, v in bundle.metadata.items()
                if k not in ("created_at", "parent", "code_version")  # set anew by register
            }
            inherited["partial_fit"] = {
                "n_samples": result.n_samples,
                "heldout_ll_before": result.heldout_ll_before,
                "heldout_ll_after": result.heldout_ll_after,
                "step_size": result.step_size,
            }
            child = dataclasses.replace(
                bundle, hmm=dict(result.params.to_arrays()), metadata=inherited
            )
            version = self._registry.register(child, alias=req.alias, parent=parent)

        def finite(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return PartialFitResponse(
            accepted=result.accepted,
            reason=result.reason,
            parent=parent,
            version=version,
            alias=req.alias if version else None,
            heldout_ll_before=finite(result.heldout_ll_before),
            heldout_ll_after=finite(result.heldout_ll_after),
            n_samples=result.n_samples,
        )

    @api.get("/v1/drift")
    @_typed
    async def drift(self, model: str = "live") -> Any:
        """Drift of ``model`` as seen by one model replica: per-feature KL and ADWIN state."""
        try:
            version = await asyncio.to_thread(self._resolve, model)
        except RegistryError as exc:
            return _error(404, str(exc), "model")
        return await self._model.options(multiplexed_model_id=version).drift.remote()

    @api.get("/healthz")
    @_typed
    async def healthz(self) -> dict[str, Any]:
        """``ok`` with the live version (``null`` when no version is live yet)."""
        try:
            live: str | None = await asyncio.to_thread(self._resolve, "live")
        except RegistryError:
            live = None
        return {"status": "ok", "live": live}


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The bound application for ``serve run``/``serve deploy`` (see :class:`AppArgs`)."""
    parsed = AppArgs(**(args or {}))
    root = parsed.registry or os.environ.get("NHMM_REGISTRY")
    if not root:
        raise ValueError("registry: set args.registry or NHMM_REGISTRY to the model store root")
    root = Registry(root).root  # absolute: replicas may run in another working directory
    model = ModelServer.options(
        num_replicas=parsed.model_replicas,
        ray_actor_options={"num_cpus": parsed.model_num_cpus},
    ).bind(root)
    return Ingress.options(
        num_replicas=parsed.ingress_replicas,
        ray_actor_options={"num_cpus": parsed.ingress_num_cpus},
    ).bind(model, root, parsed.model_dump())
