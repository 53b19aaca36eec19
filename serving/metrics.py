"""Application metrics of the Serve app (``ray.serve.metrics``), one class per deployment.

Ray exports them on each node's metrics port (``ray start --metrics-export-port``) with the
``ray_`` prefix, counters with a ``_total`` suffix, and Serve's own tags (``deployment``,
``replica``, ``application``) added. Names as scraped by Prometheus (the README lists them):

======================================  =========  ==========================================
``ray_nhmm_infer_latency_ms``           histogram  ingress time per ``/v1/infer`` (``model_version``, ``form``)
``ray_nhmm_infer_requests_total``       counter    handler answers by ``status`` code
``ray_nhmm_state_total``                counter    inferred HMM states (``model_version``, ``state``)
``ray_nhmm_model_info``                 gauge      1 for the version an alias serves (``alias``, ``model_version``)
``ray_nhmm_drift_kl``                   gauge      KL(live || training) (``model_version``, ``feature``)
``ray_nhmm_drift_score``                gauge      overall drift: the max KL (``model_version``)
``ray_nhmm_adapting``                   gauge      1 while the version is adapting (``model_version``)
``ray_nhmm_adaptations_total``          counter    drift-triggered refits (``accepted``)
``ray_nhmm_partial_fit_total``          counter    partial fits (``accepted``, ``trigger``)
``ray_nhmm_partial_fit_duration_ms``    histogram  online-EM time of a partial fit
``ray_nhmm_drift_dropped_rows_total``   counter    served rows the drift monitor never saw
======================================  =========  ==========================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ray.serve import metrics

LATENCY_BOUNDARIES_MS = [0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 50.0, 100.0, 250.0]
FIT_BOUNDARIES_MS = [5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 200.0, 500.0, 1000.0, 5000.0]


def _counter(name: str, description: str, *tags: str) -> metrics.Counter:
    return metrics.Counter(name, description=description, tag_keys=tags)


def _gauge(name: str, description: str, *tags: str) -> metrics.Gauge:
    return metrics.Gauge(name, description=description, tag_keys=tags)


def _histogram(
    name: str, description: str, boundaries: list[float], *tags: str
) -> metrics.Histogram:
    return metrics.Histogram(name, description=description, boundaries=boundaries, tag_keys=tags)


class IngressMetrics:
    """Hot-path metrics of the ingress replica (infer latency, states, versions)."""

    def __init__(self) -> None:
        self.latency = _histogram(
            "nhmm_infer_latency_ms",
            "Ingress time of one /v1/infer request (parse excluded), ms.",
            LATENCY_BOUNDARIES_MS,
            "model_version",
            "form",
        )
        self.requests = _counter(
            "nhmm_infer_requests",
            "/v1/infer requests answered by the handler, by HTTP status "
            "(malformed bodies are refused before it: see ray_serve_num_http_error_requests).",
            "status",
        )
        self.states = _counter(
            "nhmm_state",
            "Inferred (filtered MAP) HMM states.",
            "model_version",
            "state",
        )
        self.model_info = _gauge(
            "nhmm_model_info",
            "1 for the version an alias currently serves, 0 for the one it left.",
            "alias",
            "model_version",
        )
        self.dropped = _counter(
            "nhmm_drift_dropped_rows",
            "Served rows dropped before reaching the drift monitor (backlog full).",
        )
        self._alias_at: dict[str, str] = {}
        self._info: dict[tuple[str, str], float] = {}

    def observe(self, version: str, form: str, ms: float, states: list[int]) -> None:
        self.latency.observe(ms, tags={"model_version": version, "form": form})
        self.requests.inc(tags={"status": "200"})
        for s, n in Counter(states).items():
            self.states.inc(n, tags={"model_version": version, "state": str(s)})

    def served(self, alias: str, version: str) -> None:
        """Record that ``alias`` resolved to ``version`` (cheap when unchanged)."""
        before = self._alias_at.get(alias)
        if before == version:
            return
        if before is not None:
            self._info[(alias, before)] = 0.0
        self._info[(alias, version)] = 1.0
        self._alias_at[alias] = version
        self.refresh()

    def refresh(self) -> None:
        """Re-send the gauges: Ray evicts a gauge series its emitter stopped reporting
        (after ~2 export intervals), so a value that did not change must be set again."""
        for (alias, version), v in self._info.items():
            self.model_info.set(v, tags={"alias": alias, "model_version": version})


class DriftMetrics:
    """Drift monitor metrics: per-feature KL, the overall score, the adapting flag."""

    def __init__(self) -> None:
        self.kl = _gauge(
            "nhmm_drift_kl",
            "KL(live window || training histogram) per feature.",
            "model_version",
            "feature",
        )
        self.score = _gauge(
            "nhmm_drift_score",
            "Overall drift score (max per-feature KL).",
            "model_version",
        )
        self.adapting = _gauge(
            "nhmm_adapting",
            "1 while the model version is adapting (drift detected / refit running).",
            "model_version",
        )
        self.adaptations = _counter(
            "nhmm_adaptations",
            "Drift-triggered refits by guard verdict.",
            "accepted",
        )
        self._last: dict[str, tuple[dict[str, float], float, bool]] = {}

    def update(self, version: str, kl: Mapping[str, float], score: float, adapting: bool) -> None:
        self._last[version] = (dict(kl), score, adapting)
        self._send(version)

    def refresh(self) -> None:
        """Re-send every version's last values (see :meth:`IngressMetrics.refresh`)."""
        for version in self._last:
            self._send(version)

    def _send(self, version: str) -> None:
        kl, score, adapting = self._last[version]
        for name, v in kl.items():
            self.kl.set(v, tags={"model_version": version, "feature": name})
        self.score.set(score, tags={"model_version": version})
        self.adapting.set(1.0 if adapting else 0.0, tags={"model_version": version})


class FitMetrics:
    """Partial-fit count and duration."""

    def __init__(self) -> None:
        self.count = _counter(
            "nhmm_partial_fit",
            "Partial fits by guard verdict and trigger (manual or drift).",
            "accepted",
            "trigger",
        )
        self.duration = _histogram(
            "nhmm_partial_fit_duration_ms",
            "Online-EM time of one partial fit inside the replica, ms.",
            FIT_BOUNDARIES_MS,
        )

    def observe(self, accepted: bool, trigger: str, fit_ms: float) -> None:
        self.count.inc(tags={"accepted": str(accepted).lower(), "trigger": trigger})
        self.duration.observe(fit_ms)
