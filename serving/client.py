"""Model clients for the strategy: over HTTP to Serve, or in-process with the replica's code.

Both implement :class:`ModelClient` and never raise into the caller: every call returns a
:class:`ClientResult` with ``status`` ``ok``, ``timeout`` (no answer within ``budget_ms``, or a
late one) or ``error`` (refused request, unreachable server, bad bundle...). A late answer keeps
its ``result`` so the caller can still carry the posterior, but its status is ``timeout``.

>>> ClientResult(None, "error", 0.1, "x").ok
False
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Literal
from typing import Protocol

import httpx
import numpy as np

from serving.model import InferenceError
from serving.model import InferenceModel
from serving.model import InferenceResult
from training.artifacts.bundle import ModelBundle
from training.artifacts.registry import Registry
from training.features import FeatureSchema

Status = Literal["ok", "timeout", "error"]
Vector = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class ClientResult:
    """One call's outcome: the result (``None`` unless answered), status, latency and error."""

    result: InferenceResult | None
    status: Status
    latency_ms: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ModelClient(Protocol):
    """What the strategy holds: sync and async inference that never raise."""

    def infer(
        self, features: Vector, prev_log_posterior: Vector | None, schema_version: str
    ) -> ClientResult: ...

    async def ainfer(
        self, features: Vector, prev_log_posterior: Vector | None, schema_version: str
    ) -> ClientResult: ...

    def close(self) -> None: ...


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _list(v: Vector | None) -> list[float] | None:
    return None if v is None else [float(x) for x in v]


def _answered(result: InferenceResult, latency: float, budget_ms: float | None) -> ClientResult:
    """``ok``, or ``timeout`` (result kept) when the answer came later than ``budget_ms``."""
    if budget_ms is not None and latency > budget_ms:
        return ClientResult(result, "timeout", latency, f"late: {latency:.1f} ms")
    return ClientResult(result, "ok", latency)


def _failed(exc: Exception, t0: float) -> ClientResult:
    """No answer: ``timeout`` when the call ran out of time, ``error`` for anything else."""
    timed_out = isinstance(exc, (TimeoutError, httpx.TimeoutException))
    return ClientResult(
        None, "timeout" if timed_out else "error", _ms(t0), f"{type(exc).__name__}: {exc}"
    )


class HttpModelClient:
    """``POST {url}/v1/infer`` with keep-alive connections and a latency budget per call."""

    def __init__(self, url: str, budget_ms: float = 50.0, model: str = "live") -> None:
        if budget_ms <= 0:
            raise ValueError(f"budget_ms: must be > 0, got {budget_ms}")
        self.url = url.rstrip("/")
        self.budget_ms = float(budget_ms)
        self.model = model
        timeout = httpx.Timeout(self.budget_ms / 1e3)
        limits = httpx.Limits(max_keepalive_connections=8, keepalive_expiry=60.0)
        self._client = httpx.Client(base_url=self.url, timeout=timeout, limits=limits)
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._timeout = timeout
        self._limits = limits

    def _body(
        self, features: Vector, prev: Vector | None, schema_version: str, t0: float
    ) -> dict[str, Any] | ClientResult:
        """The request body, or the ``error`` result when the inputs are not numbers."""
        try:
            return {
                "schema_version": schema_version,
                "model": self.model,
                "features": _list(features),
                "prev_log_posterior": _list(prev),
            }
        except (TypeError, ValueError) as exc:
            return ClientResult(None, "error", _ms(t0), f"request: {exc}")

    def _finish(self, response: httpx.Response, t0: float) -> ClientResult:
        latency = _ms(t0)
        if response.status_code != 200:
            try:
                detail = str(response.json().get("detail"))
            except (ValueError, AttributeError):
                detail = response.text[:200]
            return ClientResult(None, "error", latency, f"HTTP {response.status_code}: {detail}")
        try:
            result = InferenceResult.from_dict(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            return ClientResult(None, "error", latency, f"bad response: {exc!r}")
        return _answered(result, latency, self.budget_ms)

    def infer(
        self, features: Vector, prev_log_posterior: Vector | None, schema_version: str
    ) -> ClientResult:
        """One blocking call (keep it off the event loop)."""
        t0 = time.perf_counter()
        body = self._body(features, prev_log_posterior, schema_version, t0)
        if isinstance(body, ClientResult):
            return body
        try:
            response = self._client.post("/v1/infer", json=body)
        except Exception as exc:
            return _failed(exc, t0)
        return self._finish(response, t0)

    async def ainfer(
        self, features: Vector, prev_log_posterior: Vector | None, schema_version: str
    ) -> ClientResult:
        """One call on the running loop, cut off hard at ``budget_ms``."""
        t0 = time.perf_counter()
        body = self._body(features, prev_log_posterior, schema_version, t0)
        if isinstance(body, ClientResult):
            return body
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:  # connections belong to one loop
            self._aloop = loop
            self._aclient = httpx.AsyncClient(
                base_url=self.url, timeout=self._timeout, limits=self._limits
            )
        try:
            response = await asyncio.wait_for(
                self._aclient.post("/v1/infer", json=body), self.budget_ms / 1e3
            )
        except Exception as exc:
            return _failed(exc, t0)
        return self._finish(response, t0)

    def close(self) -> None:
        self._client.close()
        aclient, loop, self._aclient, self._aloop = self._aclient, self._aloop, None, None
        if aclient is not None and loop is not None and not loop.is_closed():
            loop.create_task(aclient.aclose())


class InProcessModelClient:
    """The Serve replica's :class:`InferenceModel`, called directly (the backtest default).

    ``source`` is a :class:`ModelBundle` or a registry ref (alias, version id or number) loaded
    from ``registry`` (a :class:`Registry` or root; default ``$NHMM_REGISTRY``).
    """

    def __init__(
        self,
        source: ModelBundle | str,
        registry: Registry | str | None = None,
        budget_ms: float | None = None,
    ) -> None:
        if isinstance(source, ModelBundle):
            self.model = InferenceModel(source)
        else:
            reg = registry if isinstance(registry, Registry) else Registry(registry)
            version = reg.resolve(source)
            self.model = InferenceModel(reg.load(version), version=version)
        self.budget_ms = budget_ms

    @property
    def version(self) -> str:
        """The registry version id (or ``local-<bundle id>``) every result carries."""
        return self.model.version

    @property
    def schema(self) -> FeatureSchema:
        """The bundle's feature schema (version + names) the features must follow."""
        return self.model.schema

    def infer(
        self, features: Vector, prev_log_posterior: Vector | None, schema_version: str
    ) -> ClientResult:
        t0 = time.perf_counter()
        try:
            result = self.model.infer(features, prev_log_posterior, schema_version)
        except InferenceError as exc:
            return ClientResult(None, "error", _ms(t0), f"HTTP {exc.status}: {exc}")
        except Exception as exc:
            return _failed(exc, t0)
        return _answered(result, _ms(t0), self.budget_ms)

    async def ainfer(
        self, features: Vector, prev_log_posterior: Vector | None, schema_version: str
    ) -> ClientResult:
        return self.infer(features, prev_log_posterior, schema_version)

    def close(self) -> None:
        return None
