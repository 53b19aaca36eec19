"""``Ingress``: the FastAPI HTTP API, answering ``/v1/infer`` itself (no second hop).

The ingress resolves ``model`` (alias, version id or number) through the registry (cached for
``alias_ttl_s``, dropped on promote/rollback) and keeps up to ``MAX_MODELS_PER_REPLICA``
verified bundles in a ``@serve.multiplexed`` LRU keyed by the resolved version id. Promoting
moves an alias only, so ``live`` changes without restarting any replica. Served rows are queued
and sent in batches to the drift server, off the hot path.

Errors are raised as :class:`~training.errors.NhmmError` kinds and answered by the handlers of
:mod:`serving.errors` (status by class, ``{"detail", "field"}``); a route only names the field
(:func:`~serving.errors.naming`), and the registry's root never reaches a caller. Every status a
route answers is in its OpenAPI ``responses``. Admin auth and the body size cap run before any
route, in :class:`~serving.deployments._guard.RequestGuard`. A model is served only with the
drift state the ``DriftServer`` holds for it (read when the model is loaded): a fresh replica
answers ``adapting`` like the others.
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
from typing import Annotated
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi import Path
from fastapi import Query
from fastapi import Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from ray import serve
from ray.serve.handle import DeploymentHandle

from cluster.connect import dashboard_url
from cluster.jobs import find_job
from cluster.jobs import python_command
from cluster.jobs import submit_job
from cluster.runtime_env import project_runtime_env
from serving.deployments._guard import ADMIN_TAG
from serving.deployments._guard import GuardSettings
from serving.deployments._guard import RequestGuard
from serving.deployments._replica import METRICS_REFRESH_S
from serving.deployments._replica import typed_route
from serving.deployments._replica import whoami
from serving.errors import PayloadTooLargeError
from serving.errors import error_response
from serving.errors import error_responses
from serving.errors import hidden
from serving.errors import http_status
from serving.errors import install_error_handlers
from serving.errors import naming
from serving.metrics import IngressMetrics
from serving.model import InferenceError
from serving.model import InferenceModel
from serving.schemas import JOB_ID_PATTERN
from serving.schemas import MODEL_REF_PATTERN
from serving.schemas import Alias
from serving.schemas import AliasResponse
from serving.schemas import BatchInferResponse
from serving.schemas import DriftResponse
from serving.schemas import HealthResponse
from serving.schemas import InferRequest
from serving.schemas import InferResponse
from serving.schemas import LivenessResponse
from serving.schemas import ModelInfo
from serving.schemas import ModelsResponse
from serving.schemas import PartialFitRequest
from serving.schemas import PartialFitResponse
from serving.schemas import PromoteRequest
from serving.schemas import TrainRequest
from serving.schemas import TrainResponse
from training.artifacts.registry import Registry
from training.artifacts.registry import UnknownModelError
from training.errors import ConflictError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import UnavailableError

if TYPE_CHECKING:
    from serving.app import AppArgs

__all__ = ["MAX_MODELS_PER_REPLICA", "Ingress", "api"]

MAX_MODELS_PER_REPLICA = 4
#: How long a model load waits for the DriftServer's state of the version.
DRIFT_STATUS_TIMEOUT_S = 10.0
_VERSION_REF = re.compile(r"^v?\d+$|^v\d{4,}-[0-9a-f]{8}$")
logger = logging.getLogger("ray.serve")


def _replica_guard() -> GuardSettings:
    """This replica's :class:`GuardSettings` (the middleware asks before every request)."""
    return serve.get_replica_context().servable_object.guard


api = FastAPI(
    title="nautilus-hmm inference",
    description="Causal HMM regime inference + policy head, versioned through the registry. "
    "Admin routes (tag `admin`) need `Authorization: Bearer <token>` when the app has an "
    "admin token (`admin_token` or `NHMM_ADMIN_TOKEN`).",
    version="1",
)
install_error_handlers(api)  # before @serve.ingress, which freezes the app
api.add_middleware(RequestGuard, settings=_replica_guard)
#: Admin routes: the guard enforces the tag; the bearer scheme documents it in the OpenAPI.
ADMIN: dict[str, Any] = {
    "tags": [ADMIN_TAG],
    "dependencies": [Security(HTTPBearer(auto_error=False, description="The admin token."))],
}
ModelRefPath = Annotated[str, Path(pattern=MODEL_REF_PATTERN, max_length=64)]
_NOT_READY = "The live version cannot be served (tampered or missing bundle, no drift state)."


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
        self._root = self._registry.root
        token = args.admin_token or os.environ.get("NHMM_ADMIN_TOKEN") or None
        self.guard = GuardSettings(admin_token=token, max_body_bytes=args.max_body_bytes)
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._status: dict[str, tuple[bool, float]] = {}
        self._backlog: list[tuple[str, str | None, list[float], float]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._metrics = IngressMetrics()

    # -- models --------------------------------------------------------------------------------

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str) -> InferenceModel:
        """The verified bundle of registry version ``model_id`` (LRU-cached per replica), with
        the DriftServer's state of it: no answer leaves before the replica knows it."""
        bundle = await asyncio.to_thread(self._registry.load, model_id)
        model = InferenceModel(bundle, version=model_id)
        model.confidence_factor = self._args.adapt_confidence_factor
        self._status[model_id] = await self._drift_status(model_id)
        return model

    async def _drift_status(self, version: str) -> tuple[bool, float]:
        try:
            out = await asyncio.wait_for(self._drift.status.remote(version), DRIFT_STATUS_TIMEOUT_S)
        except Exception as exc:  # the DriftServer is down or slow: do not guess "not adapting"
            raise UnavailableError(
                f"drift state of {version} unavailable: {exc!r}", field="model"
            ) from exc
        return bool(out["adapting"]), float(out["drift"])

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
        """The version id of ``ref``; a 404 names the ref only (not the store, not its aliases)."""
        hit = self._cache.get(ref)
        if hit is not None and time.monotonic() - hit[0] < self._args.alias_ttl_s:
            return hit[1]
        try:
            return await asyncio.to_thread(self._resolve, ref)
        except UnknownModelError:
            raise UnknownModelError(f"unknown model ref {ref!r}") from None

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
        responses=error_responses(400, 404, 409, 413, 422, 503),
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
        with naming("model", about=f"model {req.model}", hide=self._root):
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

    @api.post(
        "/v1/models/{version}/promote",
        response_model=AliasResponse,
        responses=error_responses(400, 401, 404, 409, 413, 422),
        **ADMIN,
    )
    @typed_route
    async def promote(self, version: ModelRefPath, body: PromoteRequest | None = None) -> Any:
        """Point ``alias`` (default ``live``) at ``version`` after verifying its bundle."""
        alias = (body or PromoteRequest()).alias
        with naming("version", about=f"version {version}", hide=self._root):
            version_id = await self._aresolve(version)
            previous = await asyncio.to_thread(self._registry.aliases)
            target = await asyncio.to_thread(self._registry.promote, version_id, alias)
        return self._moved(alias, target, previous)

    @api.post(
        "/v1/aliases/{alias}/rollback",
        response_model=AliasResponse,
        responses=error_responses(401, 404, 409, 413, 422),
        **ADMIN,
    )
    @typed_route
    async def rollback(self, alias: Annotated[Alias, Path()]) -> Any:
        """Point ``alias`` back at its previous version."""
        with naming("alias", hide=self._root):
            previous = await asyncio.to_thread(self._registry.aliases)
            target = await asyncio.to_thread(self._registry.rollback, alias)
        return self._moved(alias, target, previous)

    def _moved(self, alias: str, target: str, previous: dict[str, str]) -> AliasResponse:
        """Forget cached resolutions (the alias moved) and say where it points now."""
        with self._lock:
            self._cache.clear()
        return AliasResponse(alias=alias, version=target, previous=previous.get(alias))

    @api.post(
        "/v1/partial_fit",
        response_model=PartialFitResponse,
        responses=error_responses(400, 401, 404, 409, 413, 422),
        **ADMIN,
    )
    @typed_route
    async def partial_fit(self, req: PartialFitRequest) -> Any:
        """Online-EM update of ``model``'s HMM from ``X``; if the held-out guard accepts it,
        register the child (parent recorded) under ``alias``. Nothing is overwritten.
        ``fit_ms`` is the online-EM time inside the replica, ``total_ms`` adds load+register."""
        if len(req.X) > self._args.max_fit_rows:
            raise PayloadTooLargeError(
                f"{len(req.X)} rows > max {self._args.max_fit_rows}", field="X"
            )
        with naming("model"):
            version = await self._aresolve(req.model)
        out = await self._fit.fit.remote(version, req.X, req.schema_version, req.alias)
        if "error" in out:
            return self._error(out["error"])
        return PartialFitResponse(**out)

    def _error(self, error: dict[str, Any]) -> JSONResponse:
        """An error that came back from another deployment, without the store's root."""
        return error_response(error["status"], hidden(error["detail"], self._root), error["field"])

    @api.get("/v1/drift", response_model=DriftResponse, responses=error_responses(404, 422, 503))
    @typed_route
    async def drift(
        self, model: Annotated[str, Query(pattern=MODEL_REF_PATTERN, max_length=64)] = "live"
    ) -> Any:
        """Drift of ``model``: per-feature KL, overall score, ADWIN state, adaptation history."""
        with naming("model"):
            version = await self._aresolve(model)
        out = await self._drift.report.remote(version)
        if "error" in out:
            return self._error(out["error"])
        return out

    @api.post(
        "/v1/train",
        response_model=TrainResponse,
        responses=error_responses(400, 401, 409, 413, 422, 503),
        **ADMIN,
    )
    @typed_route
    async def train(self, req: TrainRequest) -> Any:
        """Start ``nhmm sweep ARGS`` as a Ray job; return its id at once. The job gets the
        registry root by value and the names of credential variables, never their values."""
        command = [*self._train_command(), *req.args]
        address = self._jobs_address()
        try:
            if req.submission_id and await asyncio.to_thread(find_job, address, req.submission_id):
                raise ConflictError(f"job {req.submission_id} exists", field="submission_id")
            job = await asyncio.to_thread(
                submit_job,
                command,
                address=address,
                runtime_env=project_runtime_env({"NHMM_REGISTRY": self._root}),
                wait=False,
                submission_id=req.submission_id,
                metadata={"source": "nhmm-serve /v1/train"},
            )
        except NhmmError:
            raise
        except Exception as exc:  # job server unreachable or refused
            raise UnavailableError(f"job submission failed: {exc}", field="jobs_address") from exc
        return TrainResponse(job_id=job.job_id, status=job.status, entrypoint=shlex.join(command))

    def _train_command(self) -> list[str]:
        """``train_command``, else this replica's interpreter running ``training.cli sweep``:
        the job's entrypoint must not depend on the head's ``PATH``."""
        return self._args.train_command or [*python_command("training.cli"), "sweep"]

    @api.get(
        "/v1/train/{job_id}",
        response_model=TrainResponse,
        responses=error_responses(401, 404, 422, 503),
        **ADMIN,
    )
    @typed_route
    async def train_status(self, job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)]) -> Any:
        """Status of a job started by ``POST /v1/train``."""
        address = self._jobs_address()
        try:
            job = await asyncio.to_thread(find_job, address, job_id)
        except Exception as exc:  # job server unreachable
            raise UnavailableError(f"job {job_id}: {exc}", field="job_id") from exc
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist", field="job_id")
        return TrainResponse(
            job_id=job_id,
            status=str(job.status.value),
            entrypoint=job.entrypoint,
            message=job.message,
        )

    def _jobs_address(self) -> str:
        """``jobs_address``, ``RAY_API_SERVER_ADDRESS``, this cluster's dashboard, else the
        local default."""
        return (
            self._args.jobs_address
            or os.environ.get("RAY_API_SERVER_ADDRESS")
            or os.environ.get("RAY_DASHBOARD_ADDRESS")
            or dashboard_url()
            or "http://127.0.0.1:8265"
        )

    @api.get(
        "/healthz",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": _NOT_READY}},
    )
    @typed_route
    async def healthz(self) -> Any:
        """Readiness: ``ok`` once this replica can serve the live version (loaded and verified,
        its drift state known; ``live`` is ``null`` before any promote), else 503."""
        live: str | None = None
        try:
            live = await self._aresolve("live")
            await self.get_model(live)
        except UnknownModelError:
            if live is None:
                return JSONResponse({"status": "ok", "live": None})
            detail = f"live {live}: not in the registry"
        except (NhmmError, OSError) as exc:
            detail = hidden(f"live {live}: {exc}", self._root)
        else:
            return JSONResponse({"status": "ok", "live": live})
        body = {"status": "unavailable", "live": live, "detail": detail}
        return JSONResponse(body, status_code=503)

    @api.get("/livez", response_model=LivenessResponse)
    @typed_route
    async def livez(self) -> Any:
        """Liveness: the replica answers (the registry is not touched)."""
        return {"status": "alive"}

    def whoami(self) -> dict[str, Any]:
        """Replica id and pid (tests use them to prove promote restarts nothing)."""
        return whoami()
