"""``Ingress``: the FastAPI HTTP API, answering ``/v1/infer`` itself (no second hop).

The ingress resolves ``model`` (alias, version id or number) through the registry (cached for
``alias_ttl_s``, dropped on promote/rollback) and keeps up to ``MAX_MODELS_PER_REPLICA``
verified bundles in a ``@serve.multiplexed`` LRU keyed by the resolved version id. Promoting
moves an alias only, so ``live`` changes without restarting any replica. Served rows are queued
and sent in batches to the drift server, off the hot path.

Errors are raised as :class:`~training.errors.NhmmError` kinds and answered by the handlers of
:mod:`serving.errors` (status by class, ``{"detail", "field"}``); a route only names the field
(:func:`~serving.errors.naming`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import threading
import time
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi import Header
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from cluster.jobs import find_job
from cluster.jobs import submit_job
from serving.deployments._replica import METRICS_REFRESH_S
from serving.deployments._replica import typed_route
from serving.deployments._replica import whoami
from serving.errors import PayloadTooLargeError
from serving.errors import UnauthorizedError
from serving.errors import error_response
from serving.errors import http_status
from serving.errors import install_error_handlers
from serving.errors import naming
from serving.metrics import IngressMetrics
from serving.model import InferenceError
from serving.model import InferenceModel
from serving.schemas import AliasResponse
from serving.schemas import BatchInferResponse
from serving.schemas import DriftResponse
from serving.schemas import InferRequest
from serving.schemas import InferResponse
from serving.schemas import ModelInfo
from serving.schemas import ModelsResponse
from serving.schemas import PartialFitRequest
from serving.schemas import PartialFitResponse
from serving.schemas import PromoteRequest
from serving.schemas import TrainRequest
from serving.schemas import TrainResponse
from training.artifacts.registry import Registry
from training.artifacts.registry import UnknownModelError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import UnavailableError

if TYPE_CHECKING:
    from serving.app import AppArgs

__all__ = ["MAX_MODELS_PER_REPLICA", "Ingress", "api"]

MAX_MODELS_PER_REPLICA = 4
_VERSION_REF = re.compile(r"^v?\d+$|^v\d{4,}-[0-9a-f]{8}$")
logger = logging.getLogger("ray.serve")

api = FastAPI(
    title="nautilus-hmm inference",
    description="Causal HMM regime inference + policy head, versioned through the registry.",
    version="1",
)
install_error_handlers(api)  # before @serve.ingress, which freezes the app


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class Ingress:
    """HTTP API; answers ``/v1/infer`` itself from its multiplexed bundle cache."""

    def __init__(
        self,
        drift: DeploymentHandle,
        fit: DeploymentHandle,
        registry_root: str,
        args: AppArgs,
    ) -> None:
        self._drift = drift
        self._fit = fit
        self._args = args
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

    def _require_admin(self, authorization: str | None) -> None:
        token = self._args.admin_token or os.environ.get("NHMM_ADMIN_TOKEN")
        if token and authorization != f"Bearer {token}":
            raise UnauthorizedError(
                "admin token required (Authorization: Bearer ...)", field="authorization"
            )

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
    @typed_route
    async def infer(self, req: InferRequest) -> Any:
        """One step (``features``) or a batch (``items``) against ``model`` (default ``live``)."""
        t0 = time.perf_counter()
        try:
            return await self._infer(req, t0)
        except NhmmError as exc:
            self._metrics.requests.inc(tags={"status": str(http_status(exc))})
            raise

    async def _infer(self, req: InferRequest, t0: float) -> JSONResponse:
        if req.items is not None and len(req.items) > self._args.max_batch:
            raise PayloadTooLargeError(
                f"batch of {len(req.items)} > max {self._args.max_batch}", field="items"
            )
        with naming("model", about=f"model {req.model}"):
            version = await self._aresolve(req.model)
            model = await self.get_model(version)
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
                if req.items is None or exc.field == "schema_version":
                    raise
                raise type(exc)(f"items[{i}].{exc.field}", exc.message) from exc
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
    @typed_route
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
    @typed_route
    async def promote(
        self,
        version: str,
        body: PromoteRequest | None = None,
        authorization: str | None = Header(default=None),
    ) -> Any:
        """Point ``alias`` (default ``live``) at ``version`` after verifying its bundle."""
        self._require_admin(authorization)
        alias = (body or PromoteRequest()).alias
        with naming("version", about=f"version {version}"):
            previous = await asyncio.to_thread(self._registry.aliases)
            target = await asyncio.to_thread(self._registry.promote, version, alias)
        return self._moved(alias, target, previous)

    @api.post("/v1/aliases/{alias}/rollback", response_model=AliasResponse)
    @typed_route
    async def rollback(self, alias: str, authorization: str | None = Header(default=None)) -> Any:
        """Point ``alias`` back at its previous version."""
        self._require_admin(authorization)
        with naming("alias"):
            previous = await asyncio.to_thread(self._registry.aliases)
            target = await asyncio.to_thread(self._registry.rollback, alias)
        return self._moved(alias, target, previous)

    def _moved(self, alias: str, target: str, previous: dict[str, str]) -> AliasResponse:
        """Forget cached resolutions (the alias moved) and say where it points now."""
        with self._lock:
            self._cache.clear()
        return AliasResponse(alias=alias, version=target, previous=previous.get(alias))

    @api.post("/v1/partial_fit", response_model=PartialFitResponse)
    @typed_route
    async def partial_fit(
        self, req: PartialFitRequest, authorization: str | None = Header(default=None)
    ) -> Any:
        """Online-EM update of ``model``'s HMM from ``X``; if the held-out guard accepts it,
        register the child (parent recorded) under ``alias``. Nothing is overwritten.
        ``fit_ms`` is the online-EM time inside the replica, ``total_ms`` adds load+register."""
        self._require_admin(authorization)
        if len(req.X) > self._args.max_fit_rows:
            raise PayloadTooLargeError(
                f"{len(req.X)} rows > max {self._args.max_fit_rows}", field="X"
            )
        out = await self._fit.fit.remote(req.model, req.X, req.schema_version, req.alias)
        if "error" in out:
            return error_response(**out["error"])
        return PartialFitResponse(**out)

    @api.get("/v1/drift", response_model=DriftResponse)
    @typed_route
    async def drift(self, model: str = "live") -> Any:
        """Drift of ``model``: per-feature KL, overall score, ADWIN state, adaptation history."""
        with naming("model"):
            version = await self._aresolve(model)
        out = await self._drift.report.remote(version)
        if "error" in out:
            return error_response(**out["error"])
        return out

    @api.post("/v1/train", response_model=TrainResponse, responses={401: {}, 503: {}})
    @typed_route
    async def train(
        self, req: TrainRequest, authorization: str | None = Header(default=None)
    ) -> Any:
        """Start ``nhmm sweep ARGS`` (``train_command``) as a Ray job; return its id at once."""
        self._require_admin(authorization)
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
            raise UnavailableError(f"job submission failed: {exc}", field="jobs_address") from exc
        return TrainResponse(job_id=job.job_id, status=job.status, entrypoint=shlex.join(command))

    @api.get("/v1/train/{job_id}", response_model=TrainResponse, responses={401: {}, 404: {}})
    @typed_route
    async def train_status(
        self, job_id: str, authorization: str | None = Header(default=None)
    ) -> Any:
        """Status of a job started by ``POST /v1/train``."""
        self._require_admin(authorization)
        address = self._jobs_address()
        try:
            job = await asyncio.to_thread(find_job, address, job_id)
        except Exception as exc:  # job server unreachable
            raise UnavailableError(f"job {job_id}: {exc}", field="job_id") from exc
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist on {address}", field="job_id")
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
    @typed_route
    async def healthz(self) -> dict[str, Any]:
        """``ok`` with the live version (``null`` when no version is live yet)."""
        try:
            live: str | None = await self._aresolve("live")
        except UnknownModelError:
            live = None
        return {"status": "ok", "live": live}

    def whoami(self) -> dict[str, Any]:
        """Replica id and pid (tests use them to prove promote restarts nothing)."""
        return whoami()
