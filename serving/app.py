"""The Ray Serve application: a FastAPI ingress that infers itself, plus drift and fit deployments.

``/v1/infer`` is answered inside the ingress replica (no second hop on the hot path): the
ingress resolves ``model`` (alias, version id or number) through the registry (cached for
``alias_ttl_s``, dropped on promote/rollback) and keeps up to ``MAX_MODELS_PER_REPLICA``
verified bundles in a ``@serve.multiplexed`` LRU keyed by the resolved version id. Promoting
moves an alias only, so ``live`` changes without restarting any replica.

Off the hot path: every served row is queued and sent in batches, fire-and-forget, to the
``DriftServer`` deployment (per-version :class:`~serving.drift.DriftMonitor`); its answer (is
the version adapting, overall drift score) is what later results carry. With ``auto_adapt``, a
drift trigger makes the ``DriftServer`` ask ``PartialFitServer`` for a guarded online-EM child
on the monitor's recent window; the child is registered with its parent and promoted to the
alias being served if the held-out guard passes. ``PartialFitServer`` also serves
``POST /v1/partial_fit``.

``serve run serving.app:build_app registry=/path/to/store`` or ``serve deploy
serving/serve_config.yaml``; the registry root is ``args.registry`` else ``$NHMM_REGISTRY``.
Set ``admin_token`` (or ``$NHMM_ADMIN_TOKEN``) to require ``Authorization: Bearer <token>`` on
promote, rollback, partial_fit and train.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import shlex
import threading
import time
import typing
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.adapt import fit_child
from serving.drift import DriftConfig, DriftMonitor
from serving.metrics import DriftMetrics, FitMetrics, IngressMetrics
from serving.model import InferenceError, InferenceModel
from serving.schemas import (
    AliasResponse,
    BatchInferResponse,
    DriftResponse,
    InferRequest,
    InferResponse,
    ModelInfo,
    ModelsResponse,
    PartialFitRequest,
    PartialFitResponse,
    PromoteRequest,
    TrainRequest,
    TrainResponse,
)
from training.artifacts.bundle import BundleError
from training.artifacts.registry import Registry, RegistryError

MAX_MODELS_PER_REPLICA = 4
METRICS_REFRESH_S = 0.5  # gauges are re-sent at least this often (Ray evicts stale series)
_VERSION_REF = re.compile(r"^v?\d+$|^v\d{4,}-[0-9a-f]{8}$")
logger = logging.getLogger("ray.serve")


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
    # drift monitoring and auto-adaptation
    auto_adapt: bool = False
    adapt_confidence_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    adapt_cooldown_s: float = Field(default=60.0, ge=0.0)
    adapt_min_rows: int = Field(default=300, ge=10)  # rows since the trigger to refit on
    drift_window: int = Field(default=2000, ge=10)
    drift_min_samples: int = Field(default=200, ge=1)
    kl_threshold: float = Field(default=0.5, gt=0.0)
    adwin_delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    loglik_drop: float = Field(default=3.0, gt=0.0)
    drift_flush_s: float = Field(default=0.25, gt=0.0)
    drift_backlog: int = Field(default=100_000, ge=1)
    # POST /v1/train
    jobs_address: str | None = None
    train_command: list[str] = Field(default_factory=lambda: ["nhmm", "sweep"], min_length=1)

    def drift_config(self) -> DriftConfig:
        return DriftConfig(
            window=self.drift_window,
            min_samples=min(self.drift_min_samples, self.drift_window),
            kl_threshold=self.kl_threshold,
            adwin_delta=self.adwin_delta,
            loglik_drop=self.loglik_drop,
        )


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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _whoami() -> dict[str, Any]:
    return {"pid": os.getpid(), "replica": serve.get_replica_context().replica_id.unique_id}


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class PartialFitServer:
    """Guarded online-EM children of registry versions (``POST /v1/partial_fit``, auto-adapt)."""

    def __init__(self, registry_root: str, kl_threshold: float = 0.5) -> None:
        self._registry = Registry(registry_root)
        self._kl_threshold = kl_threshold
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
        """A :class:`~serving.adapt.FitOutcome` as a dict, or ``{"error": {...}}``."""
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
                self._kl_threshold,
            )
        except InferenceError as exc:
            return {"error": {"status": exc.status, "field": exc.field, "detail": str(exc)}}
        except RegistryError as exc:
            return {"error": {"status": 404, "field": "model", "detail": str(exc)}}
        except BundleError as exc:
            return {"error": {"status": 409, "field": "model", "detail": str(exc)}}
        self._metrics.observe(out.accepted, trigger, out.fit_ms)
        return out.to_dict()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class DriftServer:
    """Per-version drift monitors fed by the ingress; starts adaptations when ``auto_adapt``."""

    def __init__(self, fit: DeploymentHandle, registry_root: str, args: dict[str, Any]) -> None:
        self._fit = fit
        self._args = AppArgs(**args)
        self._config = self._args.drift_config()
        self._registry = Registry(registry_root)
        self._monitors: dict[str, DriftMonitor] = {}
        self._alias: dict[str, str] = {}
        self._inflight: set[str] = set()
        self._last_attempt: dict[str, float] = {}
        self._since: dict[str, int] = {}  # version -> n_samples when its drift trigger fired
        self._history: deque[dict[str, Any]] = deque(maxlen=200)
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = DriftMetrics()
        self._refresher: asyncio.Task[None] | None = None

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(METRICS_REFRESH_S)
            self._metrics.refresh()

    async def _monitor(self, version: str) -> DriftMonitor:
        mon = self._monitors.get(version)
        if mon is None:
            bundle = await asyncio.to_thread(self._registry.load, version)
            mon = self._monitors.setdefault(version, DriftMonitor(bundle, self._config))
        return mon

    def _status(self, version: str, mon: DriftMonitor) -> tuple[bool, float, dict[str, float]]:
        kl = mon.kl()
        adapting = bool(mon.reasons(kl)) or version in self._inflight
        return adapting, (max(kl.values()) if kl else 0.0), kl

    async def feed(
        self, batch: list[tuple[str, str | None, np.ndarray, np.ndarray]]
    ) -> dict[str, tuple[bool, float]]:
        """Add served rows ``(version, alias, X, loglik)``; return each version's
        ``(adapting, drift score)``."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        out: dict[str, tuple[bool, float]] = {}
        for version, alias, X, loglik in batch:
            try:
                mon = await self._monitor(version)
            except (RegistryError, BundleError, ValueError) as exc:
                logger.warning("drift: cannot monitor %s: %s", version, exc)
                continue
            for x, ll in zip(X, loglik, strict=True):
                mon.update(x, float(ll))
            if alias is not None:
                self._alias[version] = alias
            adapting, score, kl = self._status(version, mon)
            if adapting:
                self._since.setdefault(version, mon.n_samples)
            else:
                self._since.pop(version, None)
            out[version] = (adapting, score)
            self._metrics.update(version, kl, score, adapting)
            if self._args.auto_adapt and adapting and self._may_adapt(version, mon):
                self._start_adaptation(version, mon, kl)
        return out

    def _may_adapt(self, version: str, mon: DriftMonitor) -> bool:
        """Refit once ``adapt_min_rows`` rows arrived since the trigger (fit the new regime,
        not the old one), at most once per ``adapt_cooldown_s`` per version."""
        if version in self._inflight:
            return False
        if mon.n_samples - self._since.get(version, mon.n_samples) < self._args.adapt_min_rows:
            return False
        last = self._last_attempt.get(version)
        return last is None or time.monotonic() - last >= self._args.adapt_cooldown_s

    def _start_adaptation(self, version: str, mon: DriftMonitor, kl: dict[str, float]) -> None:
        self._inflight.add(version)
        self._last_attempt[version] = time.monotonic()
        n_new = mon.n_samples - self._since.pop(version, 0)
        X = mon.window()[-n_new:]  # the rows since the trigger (at most the whole window)
        entry: dict[str, Any] = {
            "time": _now(),
            "parent": version,
            "alias": self._alias.get(version),
            "triggers": list(mon.reasons(kl)),
            "scores": {
                "kl": kl,
                "drift": max(kl.values()) if kl else 0.0,
                "loglik_changes": mon.loglik_changes,
            },
            "n_rows": len(X),
        }
        task = asyncio.get_running_loop().create_task(self._adapt(entry, X))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adapt(self, entry: dict[str, Any], X: np.ndarray) -> None:
        version = entry["parent"]
        try:
            out = await self._fit.fit.remote(
                version,
                X,
                None,
                entry["alias"],
                True,
                "drift",
                {"adaptation": {k: entry[k] for k in ("time", "triggers", "scores")}},
            )
            if "error" in out:
                entry.update(child=None, accepted=False, promoted=False, reason=str(out["error"]))
            else:
                entry.update(
                    child=out["version"],
                    accepted=out["accepted"],
                    promoted=out["promoted"],
                    reason=out["reason"],
                    fit_ms=out["fit_ms"],
                )
                entry["scores"]["heldout_ll_before"] = out["heldout_ll_before"]
                entry["scores"]["heldout_ll_after"] = out["heldout_ll_after"]
        except Exception as exc:  # recorded in the history, never raised
            entry.update(child=None, accepted=False, promoted=False, reason=f"error: {exc!r}")
        finally:
            self._inflight.discard(version)
            self._last_attempt[version] = time.monotonic()
        self._history.append(entry)
        self._metrics.adaptations.inc(tags={"accepted": str(entry["accepted"]).lower()})
        logger.info("adaptation %s", entry)

    async def report(self, version: str) -> dict[str, Any]:
        """The version's drift report, its status and the whole adaptation history."""
        try:
            mon = await self._monitor(version)
        except (RegistryError, BundleError, ValueError) as exc:
            return {"error": {"status": 404, "field": "model", "detail": str(exc)}}
        rep = dataclasses.asdict(mon.report())
        adapting, score, _ = self._status(version, mon)
        return {
            "model_version": version,
            **{k: rep[k] for k in ("n_samples", "n_window", "kl", "max_kl", "drifted")},
            "loglik_changes": rep["loglik_changes"],
            "loglik_mean": rep["loglik_mean"],
            "adapting": adapting,
            "drift": score,
            "triggers": list(rep["reasons"]),
            "auto_adapt": self._args.auto_adapt,
            "history": list(self._history),
        }

    def whoami(self) -> dict[str, Any]:
        return _whoami()


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


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class Ingress:
    """HTTP API; answers ``/v1/infer`` itself from its multiplexed bundle cache."""

    def __init__(
        self,
        drift: DeploymentHandle,
        fit: DeploymentHandle,
        registry_root: str,
        args: dict[str, Any],
    ) -> None:
        self._drift = drift
        self._fit = fit
        self._args = AppArgs(**args)
        self._registry = Registry(registry_root)
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._status: dict[str, tuple[bool, float]] = {}
        self._backlog: list[tuple[str, str | None, list[float], float]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._metrics = IngressMetrics()

    # -- models --------------------------------------------------------------------------------

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str) -> InferenceModel:
        """The verified bundle of registry version ``model_id`` (LRU-cached per replica)."""
        bundle = await asyncio.to_thread(self._registry.load, model_id)
        model = InferenceModel(bundle, version=model_id)
        model.confidence_factor = self._args.adapt_confidence_factor
        return model

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

    async def _aresolve(self, ref: str) -> str:
        hit = self._cache.get(ref)
        if hit is not None and time.monotonic() - hit[0] < self._args.alias_ttl_s:
            return hit[1]
        return await asyncio.to_thread(self._resolve, ref)

    def _check_admin(self, authorization: str | None) -> JSONResponse | None:
        token = self._args.admin_token or os.environ.get("NHMM_ADMIN_TOKEN")
        if token and authorization != f"Bearer {token}":
            return _error(401, "admin token required (Authorization: Bearer ...)", "authorization")
        return None

    # -- drift feed (fire-and-forget, never awaited on the infer path) --------------------------

    def _queue(
        self, version: str, alias: str | None, rows: list[tuple[list[float], float]]
    ) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        room = self._args.drift_backlog - len(self._backlog)
        if room < len(rows):
            self._metrics.dropped.inc(len(rows) - max(room, 0))
            rows = rows[: max(room, 0)]
        self._backlog.extend((version, alias, x, ll) for x, ll in rows)

    async def _flush_loop(self) -> None:
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(self._args.drift_flush_s)
            if time.monotonic() - refreshed >= METRICS_REFRESH_S:
                self._metrics.refresh()
                refreshed = time.monotonic()
            if not self._backlog:
                continue
            rows, self._backlog = self._backlog, []
            groups: dict[tuple[str, str | None], tuple[list[list[float]], list[float]]] = {}
            for version, alias, x, ll in rows:
                xs, lls = groups.setdefault((version, alias), ([], []))
                xs.append(x)
                lls.append(ll)
            batch = [
                (v, a, np.asarray(xs, dtype=np.float64), np.asarray(lls, dtype=np.float64))
                for (v, a), (xs, lls) in groups.items()
            ]
            try:
                self._status.update(await self._drift.feed.remote(batch))
            except Exception as exc:  # drift must never break inference
                self._metrics.dropped.inc(len(rows))
                logger.warning("drift feed failed (%d rows dropped): %r", len(rows), exc)

    # -- routes --------------------------------------------------------------------------------

    @api.post(
        "/v1/infer",
        response_model=InferResponse | BatchInferResponse,
        responses={404: {}, 409: {}, 413: {}, 422: {}},
    )
    @_typed
    async def infer(self, req: InferRequest) -> Any:
        """One step (``features``) or a batch (``items``) against ``model`` (default ``live``)."""
        t0 = time.perf_counter()
        if req.items is not None and len(req.items) > self._args.max_batch:
            self._metrics.requests.inc(tags={"status": "413"})
            return _error(413, f"batch of {len(req.items)} > max {self._args.max_batch}", "items")
        try:
            version = await self._aresolve(req.model)
            model = await self.get_model(version)
        except RegistryError as exc:
            self._metrics.requests.inc(tags={"status": "404"})
            return _error(404, str(exc), "model")
        except BundleError as exc:
            self._metrics.requests.inc(tags={"status": "409"})
            return _error(409, f"model {req.model}: {exc}", "model")
        adapting, drift = self._status.get(version, (False, 0.0))
        if req.items is None:
            steps = [(req.features, req.prev_log_posterior)]
        else:
            steps = [(i.features, i.prev_log_posterior) for i in req.items]
        results = []
        for i, (features, prev) in enumerate(steps):
            try:
                r = model.infer(features, prev, req.schema_version, adapting, drift)
            except InferenceError as exc:
                field = exc.field
                if req.items is not None and field != "schema_version":
                    field = f"items[{i}].{field}"
                self._metrics.requests.inc(tags={"status": str(exc.status)})
                return _error(exc.status, f"{field}: {exc.message}", field)
            results.append(r)
        alias = None if _VERSION_REF.match(req.model) else req.model
        self._queue(
            version, alias, [(f, r.loglik) for (f, _), r in zip(steps, results, strict=True)]
        )
        if alias is not None:
            self._metrics.served(alias, version)
        out = [r.to_dict() for r in results]
        body = out[0] if req.items is None else {"model_version": version, "results": out}
        form = "single" if req.items is None else "batch"
        ms = (time.perf_counter() - t0) * 1e3
        self._metrics.observe(version, form, ms, [r.state for r in results])
        return JSONResponse(body)

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
        register the child (parent recorded) under ``alias``. Nothing is overwritten.
        ``fit_ms`` is the online-EM time inside the replica, ``total_ms`` adds load+register."""
        denied = self._check_admin(authorization)
        if denied is not None:
            return denied
        if len(req.X) > self._args.max_fit_rows:
            return _error(413, f"{len(req.X)} rows > max {self._args.max_fit_rows}", "X")
        out = await self._fit.fit.remote(req.model, req.X, req.schema_version, req.alias)
        if "error" in out:
            e = out["error"]
            return _error(int(e["status"]), str(e["detail"]), e["field"])
        return PartialFitResponse(**out)

    @api.get("/v1/drift", response_model=DriftResponse)
    @_typed
    async def drift(self, model: str = "live") -> Any:
        """Drift of ``model``: per-feature KL, overall score, ADWIN state, adaptation history."""
        try:
            version = await self._aresolve(model)
        except RegistryError as exc:
            return _error(404, str(exc), "model")
        out = await self._drift.report.remote(version)
        if "error" in out:
            return _error(404, out["error"]["detail"], "model")
        return out

    @api.post("/v1/train", response_model=TrainResponse, responses={401: {}, 503: {}})
    @_typed
    async def train(
        self, req: TrainRequest, authorization: str | None = Header(default=None)
    ) -> Any:
        """Start ``nhmm sweep ARGS`` (``train_command``) as a Ray job; return its id at once."""
        denied = self._check_admin(authorization)
        if denied is not None:
            return denied
        from cluster.jobs import submit_job

        command = [*self._args.train_command, *req.args]
        try:
            job = await asyncio.to_thread(
                submit_job,
                command,
                address=self._jobs_address(),
                wait=False,
                submission_id=req.submission_id,
                metadata={"source": "nhmm-serve /v1/train"},
            )
        except Exception as exc:  # job server unreachable or refused
            return _error(503, f"job submission failed: {exc}", "jobs_address")
        return TrainResponse(job_id=job.job_id, status=job.status, entrypoint=shlex.join(command))

    @api.get("/v1/train/{job_id}", response_model=TrainResponse, responses={401: {}, 404: {}})
    @_typed
    async def train_status(
        self, job_id: str, authorization: str | None = Header(default=None)
    ) -> Any:
        """Status of a job started by ``POST /v1/train``."""
        denied = self._check_admin(authorization)
        if denied is not None:
            return denied
        from ray.job_submission import JobSubmissionClient

        from cluster.jobs import dashboard_address

        def info() -> Any:
            return JobSubmissionClient(dashboard_address(self._jobs_address())).get_job_info(job_id)

        try:
            job = await asyncio.to_thread(info)
        except Exception as exc:  # job server unreachable, unknown id
            status = 404 if "does not exist" in str(exc) else 503
            return _error(status, f"job {job_id}: {exc}", "job_id")
        return TrainResponse(
            job_id=job_id,
            status=str(job.status.value),
            entrypoint=job.entrypoint,
            message=job.message,
        )

    def _jobs_address(self) -> str:
        return (
            self._args.jobs_address
            or os.environ.get("RAY_API_SERVER_ADDRESS")
            or os.environ.get("RAY_DASHBOARD_ADDRESS")
            or "http://127.0.0.1:8265"
        )

    @api.get("/healthz")
    @_typed
    async def healthz(self) -> dict[str, Any]:
        """``ok`` with the live version (``null`` when no version is live yet)."""
        try:
            live: str | None = await self._aresolve("live")
        except RegistryError:
            live = None
        return {"status": "ok", "live": live}

    def whoami(self) -> dict[str, Any]:
        """Replica id and pid (tests use them to prove promote restarts nothing)."""
        return _whoami()


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The bound application for ``serve run``/``serve deploy`` (see :class:`AppArgs`)."""
    parsed = AppArgs(**(args or {}))
    root = parsed.registry or os.environ.get("NHMM_REGISTRY")
    if not root:
        raise ValueError("registry: set args.registry or NHMM_REGISTRY to the model store root")
    root = Registry(root).root  # absolute: replicas may run in another working directory
    dumped = parsed.model_dump()
    fit = PartialFitServer.options(ray_actor_options={"num_cpus": parsed.fit_num_cpus}).bind(
        root, parsed.kl_threshold
    )
    drift = DriftServer.options(ray_actor_options={"num_cpus": parsed.drift_num_cpus}).bind(
        fit, root, dumped
    )
    return Ingress.options(
        num_replicas=parsed.ingress_replicas,
        ray_actor_options={"num_cpus": parsed.ingress_num_cpus},
    ).bind(drift, fit, root, dumped)
