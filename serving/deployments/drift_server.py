"""``DriftServer``: per-version drift monitors fed by the ingress, and auto-adaptation.

The ingress sends every served row here in batches, fire-and-forget; each version gets a
:class:`~serving.drift.DriftMonitor` (KL against the bundle's training histograms, ADWIN on the
log-likelihood). Its answer — is the version adapting, the overall drift score — is what later
results carry. With ``auto_adapt``, a drift trigger asks
:class:`~serving.deployments.partial_fit_server.PartialFitServer` for a guarded child fitted on
the rows since the trigger, promoted to the alias being served if the held-out guard passes.
One replica: the monitors are state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.deployments._replica import METRICS_REFRESH_S
from serving.deployments._replica import utc_now
from serving.deployments._replica import whoami
from serving.drift import DriftMonitor
from serving.errors import error_dict
from serving.metrics import DriftMetrics
from training.artifacts.registry import Registry
from training.errors import NhmmError

if TYPE_CHECKING:
    from serving.app import AppArgs

__all__ = ["DriftServer"]

logger = logging.getLogger("ray.serve")


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class DriftServer:
    """Per-version drift monitors fed by the ingress; starts adaptations when ``auto_adapt``."""

    def __init__(self, fit: DeploymentHandle, registry_root: str, args: AppArgs) -> None:
        self._fit = fit
        self._args = args
        self._config = args.drift
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
            except NhmmError as exc:  # unknown version, tampered bundle, no histograms
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
        not the old one), at most once per ``adapt_cooldown_s`` per lineage (a child keeps the
        training histograms as its reference, so it still sees the drift that made it)."""
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
            "time": utc_now(),
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
            if entry.get("child"):  # the cooldown is the lineage's: a child keeps its parent's
                self._last_attempt[entry["child"]] = self._last_attempt[version]
        self._history.append(entry)
        self._metrics.adaptations.inc(tags={"accepted": str(entry["accepted"]).lower()})
        logger.info("adaptation %s", entry)

    async def status(self, version: str) -> dict[str, Any]:
        """``{"adapting", "drift"}`` of ``version`` as results carry it: what a replica loading
        the version starts from. A version it cannot monitor is not adapting."""
        try:
            mon = await self._monitor(version)
        except NhmmError:
            return {"adapting": version in self._inflight, "drift": 0.0}
        adapting, score, _ = self._status(version, mon)
        return {"adapting": adapting, "drift": score}

    async def report(self, version: str) -> dict[str, Any]:
        """The version's drift report, its status and the whole adaptation history."""
        try:
            mon = await self._monitor(version)
        except NhmmError as exc:
            return {"error": error_dict(exc, field="model")}
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
        return whoami()
