"""Prometheus for the node and Serve: ``prometheus.yml`` (scrape config), ``rules.yml`` (alert
rules) and ``rules_test.yml`` (their ``promtool test rules`` unit tests) beside this file;
:mod:`~ops.prometheus.feed` replays a RUN_DIR into the node's metrics exporter.

:func:`exported_series` is every series name the project exports (the node's
:data:`node.metrics.METRICS` and the Serve app's :mod:`serving.metrics`), so rules and panels
can be held to names that exist; :func:`metric_names` lists the names a PromQL expression uses.

>>> sorted(metric_names('sum by (le) (rate(ray_nhmm_infer_latency_ms_bucket{form="batch"}[5m]))'
...                     ' / on (job) up{job="ray"}'))
['ray_nhmm_infer_latency_ms_bucket', 'up']
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CONFIG", "RULES", "RULES_TEST", "exported_series", "metric_names"]

_HERE = Path(__file__).parent
CONFIG = _HERE / "prometheus.yml"
RULES = _HERE / "rules.yml"
RULES_TEST = _HERE / "rules_test.yml"

#: Series a metric type adds to its name in the exposition format.
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
_NAME = re.compile(r"\b(?:nhmm|ray)_[A-Za-z0-9_]+\b|\bup(?=\s*\{)")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def metric_names(expr: str) -> set[str]:
    """The project's metric names (``nhmm_*``, ``ray_*``) and ``up`` in a PromQL expression
    (label values are left out)."""
    return set(_NAME.findall(_QUOTED.sub('""', expr)))


def exported_series() -> dict[str, str]:
    """``series name -> where it comes from`` (``node`` or ``serve``) for every series the node
    exporter and the Serve app export, plus Prometheus's own ``up``.

    Serve's names are read from the metric objects :mod:`serving.metrics` creates (Ray adds
    ``ray_``; counters get ``_total``), so they cannot drift from what the app exports.
    """
    from ray.util import metrics as ray_metrics

    from node.metrics import METRICS
    from serving.metrics import DriftMetrics
    from serving.metrics import FitMetrics
    from serving.metrics import IngressMetrics

    out = {"up": "prometheus"}
    for name, (kind, _labels, _doc) in METRICS.items():
        base = name.removesuffix("_total")
        out.update((base + s, "node") for s in _SUFFIXES[kind])
    kinds = {ray_metrics.Counter: "counter", ray_metrics.Gauge: "gauge",
             ray_metrics.Histogram: "histogram"}  # fmt: skip
    for holder in (IngressMetrics(), DriftMetrics(), FitMetrics()):
        for metric in vars(holder).values():
            kind = next((k for cls, k in kinds.items() if isinstance(metric, cls)), None)
            if kind is not None:
                name = f"ray_{metric.info['name']}"
                out.update((name + s, "serve") for s in _SUFFIXES[kind])
    return out
