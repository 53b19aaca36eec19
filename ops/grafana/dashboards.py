"""The Grafana dashboards, built in code with Grafana's own SDK (``grafana-foundation-sdk``).

``make dashboards`` (``python -m ops.grafana.dashboards``) writes ``dashboards/<uid>.json``
beside this file; the JSON is a build output checked into the repo (a test fails when it differs
from :func:`render`). Grafana loads it through ``provisioning/`` (``compose.yaml`` runs both).
Every query names only metrics the node (:mod:`node.metrics`) or the Serve app
(:mod:`serving.metrics`) exports: :func:`render` refuses any other name, and a test runs every
query against a real Prometheus scraping a replayed backtest and a real Serve.

Queries use Grafana's ``$__rate_interval`` / ``$__range`` and the dashboard variable
``$instance`` (the node exporters Prometheus scrapes).

>>> doc = json.loads(json.dumps(node_dashboard().build(), cls=JSONEncoder))
>>> queries(doc)[:2]
[('$instance', 'nhmm_node_info'), ('Kill switch', 'max(nhmm_node_kill_switch_engaged{instance=~"$instance"})')]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge
from grafana_foundation_sdk.builders import common
from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.builders import heatmap
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import HeatmapCellLayout
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from ops.prometheus import exported_series
from ops.prometheus import metric_names

__all__ = ["DASHBOARDS", "DATASOURCE_UID", "OUT_DIR", "main", "queries", "render"]

#: The Prometheus datasource's uid (``provisioning/datasources/prometheus.yml``).
DATASOURCE_UID = "nhmm-prometheus"
OUT_DIR = Path(__file__).parent / "dashboards"
_DS = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
_NODE = '{instance=~"$instance"}'


@dataclass(frozen=True)
class Q:
    """One PromQL target: ``legend`` is Grafana's legend format; ``table`` an instant table."""

    expr: str
    legend: str = ""
    table: bool = False


def _node(metric: str, match: str = "") -> str:
    """``metric`` on the selected node(s), plus label matchers ``match``.

    >>> _node("nhmm_node_blocks_total", 'reason="LATENCY"')
    'nhmm_node_blocks_total{instance=~"$instance",reason="LATENCY"}'
    """
    return f"{metric}{_NODE[:-1]}{',' + match if match else ''}}}"


def _targets(panel: Any, qs: tuple[Q, ...]) -> Any:
    panel.datasource(_DS)
    for i, q in enumerate(qs):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(_DS)
        if q.legend:
            target.legend_format(q.legend)
        if q.table:
            target.instant().format(PromQueryFormat.TABLE)
        panel.with_target(target)
    return panel


def _series(title: str, desc: str, *qs: Q, unit: str = "short", stack: bool = False) -> Any:
    panel = timeseries.Panel().title(title).description(desc).unit(unit).span(12).height(8)
    panel.line_width(1).fill_opacity(40 if stack else 10)
    if stack:
        panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    return _targets(panel, qs)


def _stat(title: str, desc: str, q: Q, unit: str = "short") -> Any:
    return _targets(stat.Panel().title(title).description(desc).unit(unit).span(6).height(4), (q,))


def _bars(title: str, desc: str, q: Q) -> Any:
    return _targets(bargauge.Panel().title(title).description(desc).span(12).height(8), (q,))


def _table(title: str, desc: str, *qs: Q) -> Any:
    return _targets(table.Panel().title(title).description(desc).span(12).height(6), qs)


def _by_node(agg: str, metric: str) -> str:
    """One series per selected node.

    >>> _by_node("max", "nhmm_node_state")
    'max by (instance) (nhmm_node_state{instance=~"$instance"})'
    """
    return f"{agg} by (instance) ({_node(metric)})"


def _rate(metric: str, by: str, match: str = "", window: str = "$__rate_interval") -> str:
    return f"sum by ({by}) (rate({_node(metric, match)}[{window}]))"


def node_dashboard() -> dashboard.Dashboard:
    """The trading node: regime, guardrails, inference, drift, funding, position and PnL,
    orders and fills, model version (node and Serve)."""
    p95 = "histogram_quantile(0.95, sum by (le) (rate({}[$__rate_interval])))"
    transitions = (
        heatmap.Panel()
        .title("Regime transitions")
        .span(12)
        .height(8)
        .description("Changes of filtered regime per interval, one row per from→to pair.")
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(HeatmapCellLayout.UNKNOWN))
    )
    d = dashboard.Dashboard("nautilus-hmm node").uid("nhmm-node").tags(["nhmm"]).refresh("10s")
    d.time("now-1h", "now").with_variable(
        dashboard.QueryVariable("instance").label("node").datasource(_DS)
        .query("label_values(nhmm_node_info, instance)").multi(True).include_all(True)
    )  # fmt: skip
    rows: list[tuple[str, list[Any]]] = [
        ("Status", [
            _stat("Kill switch", "1: engaged, nothing is submitted.",
                  Q(f"max({_node('nhmm_node_kill_switch_engaged')})")),
            _stat("Trading enabled", "0: decisions are logged, no order is sent.",
                  Q(f"min({_node('nhmm_node_trading_enabled')})")),
            _stat("Since last sample", "Wall-clock time since the last decided sample.",
                  Q(f"time() - max({_node('nhmm_node_last_sample_timestamp_seconds')})"), "s"),
            _stat("Samples / s", "Feature samples decided per second.",
                  Q(f"sum(rate({_node('nhmm_node_samples_total')}[$__rate_interval]))"), "short"),
        ]),
        ("Regime", [
            _bars("State histogram", "Samples per filtered MAP regime over the time range.",
                  Q(f"sum by (state) (increase({_node('nhmm_node_state_samples_total')}[$__range]))",
                    "state {{state}}", table=True)),
            _targets(transitions, (Q(
                f"sum by (from_state, to_state) (increase({_node('nhmm_node_state_transitions_total')}[$__rate_interval]))",
                "{{from_state}}→{{to_state}}"),)),
            _series("State, entropy and confidence", "Current regime, posterior entropy (bits) "
                    "and confidence of the last result.",
                    Q(_by_node("max", "nhmm_node_state"), "state {{instance}}"),
                    Q(_by_node("max", "nhmm_node_posterior_entropy_bits"), "entropy {{instance}}"),
                    Q(_by_node("max", "nhmm_node_confidence"), "confidence {{instance}}")),
            _series("States served by Serve", "Inferred states per second, by model version.",
                    Q("sum by (model_version, state) (rate(ray_nhmm_state_total[$__rate_interval]))",
                      "{{model_version}} state {{state}}"), stack=True),
        ]),
        ("Guardrails", [
            _series("Blocks by reason", "Samples blocked per second, by guardrail code; entries "
                    "for scale.",
                    Q(_rate("nhmm_node_blocks_total", "reason"), "{{reason}}"),
                    Q(f"sum(rate({_node('nhmm_node_entries_total')}[$__rate_interval]))", "OK (entries)"),
                    stack=True),
            _bars("Blocks over the range", "Blocked samples per code over the time range.",
                  Q(f"sum by (reason) (increase({_node('nhmm_node_blocks_total')}[$__range]))",
                    "{{reason}}", table=True)),
        ]),
        ("Inference", [
            _series("Inference latency p95", "Node round trip (what LATENCY checks) against its "
                    "budget, and Serve's ingress time.",
                    Q(p95.format(_node("nhmm_node_inference_latency_seconds_bucket")) + " * 1000",
                      "node p95"),
                    Q(f"max({_node('nhmm_node_latency_budget_seconds')}) * 1000", "budget"),
                    Q(p95.format("ray_nhmm_infer_latency_ms_bucket"), "Serve p95"), unit="ms"),
            _series("Inference answers", "Answers per second by status (timeout and error are "
                    "LATENCY blocks).",
                    Q(_rate("nhmm_node_inference_total", "status"), "{{status}}"), stack=True),
        ]),
        ("Drift", [
            _series("Drift KL per feature", "KL(live window || training histogram) per feature, "
                    "from Serve's drift monitor (a version adapts above kl_threshold 0.5).",
                    Q("max by (model_version, feature) (ray_nhmm_drift_kl)",
                      "{{feature}} ({{model_version}})")),
            _series("Drift score and adapting", "Overall drift score and the adapting flag "
                    "(DRIFT blocks entries while 1), node and Serve.",
                    Q(_by_node("max", "nhmm_node_drift_score"), "drift score {{instance}}"),
                    Q(_by_node("max", "nhmm_node_adapting"), "adapting {{instance}}"),
                    Q("max by (model_version) (ray_nhmm_drift_score)", "Serve {{model_version}}"),
                    Q("max by (model_version) (ray_nhmm_adapting)",
                      "Serve adapting {{model_version}}")),
        ]),
        ("Perp funding", [
            _series("Time to funding", "Perps: exchange-time seconds to the next funding "
                    "(00/08/16 UTC).",
                    Q(_by_node("min", "nhmm_node_time_to_funding_seconds"), "{{instance}}"), unit="s"),
        ]),
        ("Position and PnL", [
            _series("Position", "Net position (base) and its limit.",
                    Q(_by_node("sum", "nhmm_node_position"), "{{instance}}"),
                    Q(f"max({_node('nhmm_node_max_position')})", "limit"),
                    Q(f"-max({_node('nhmm_node_max_position')})", "-limit")),
            _series("PnL and drawdown", "PnL after fees (quote) and drawdown from the equity "
                    "peak against the DD limit.",
                    Q(_by_node("sum", "nhmm_node_pnl"), "PnL {{instance}}"),
                    Q(_by_node("max", "nhmm_node_drawdown"), "drawdown {{instance}}"),
                    Q(f"max({_node('nhmm_node_max_drawdown')})", "DD limit")),
        ]),
        ("Orders and fills", [
            _series("Orders and fills", "Orders sent (entry/exit) and fills, per interval.",
                    Q(f"sum by (kind, side) (increase({_node('nhmm_node_orders_total')}[$__rate_interval]))",
                      "order {{kind}} {{side}}"),
                    Q(f"sum by (side, liquidity) (increase({_node('nhmm_node_fills_total')}[$__rate_interval]))",
                      "fill {{side}} {{liquidity}}")),
            _series("Filled notional and fees", "Quote notional filled and commissions paid over "
                    "the time range.",
                    Q(f"sum by (side) (increase({_node('nhmm_node_fill_notional_total')}[$__range]))",
                      "notional {{side}}"),
                    Q(f"sum(increase({_node('nhmm_node_fees_total')}[$__range]))", "fees")),
        ]),
        ("Model", [
            _table("Model versions", "The version each node trades and the version each Serve "
                   "alias serves (1 = now).",
                   Q(f"max by (instance, model_ref, model_version) ({_node('nhmm_node_model_info')})",
                     table=True),
                   Q("max by (alias, model_version) (ray_nhmm_model_info)", table=True)),
        ]),
    ]  # fmt: skip
    return _with_rows(d, rows)


def serve_dashboard() -> dashboard.Dashboard:
    """The Serve app: requests, latency, states, drift, partial fits, aliases."""
    q = "histogram_quantile({}, sum by (le, form) (rate(ray_nhmm_infer_latency_ms_bucket[$__rate_interval])))"
    d = dashboard.Dashboard("nautilus-hmm Serve").uid("nhmm-serve").tags(["nhmm"]).refresh("10s")
    d.time("now-1h", "now")
    rows: list[tuple[str, list[Any]]] = [
        ("Requests", [
            _series("/v1/infer answers", "Requests per second by HTTP status.",
                    Q("sum by (status) (rate(ray_nhmm_infer_requests_total[$__rate_interval]))",
                      "{{status}}"), stack=True),
            _series("/v1/infer latency", "Ingress time per request, by form (single/batch).",
                    *(Q(q.format(p), f"p{round(p * 100)} {{{{form}}}}") for p in (0.5, 0.95, 0.99)),
                    unit="ms"),
        ]),
        ("Model", [
            _series("States served", "Inferred states per second, by version.",
                    Q("sum by (model_version, state) (rate(ray_nhmm_state_total[$__rate_interval]))",
                      "{{model_version}} state {{state}}"), stack=True),
            _table("Aliases", "The version each alias serves (1 = now, 0 = the one it left).",
                   Q("max by (alias, model_version) (ray_nhmm_model_info)", table=True)),
        ]),
        ("Drift and adaptation", [
            _series("Drift KL per feature", "KL(live || training) per feature and version.",
                    Q("max by (model_version, feature) (ray_nhmm_drift_kl)",
                      "{{feature}} ({{model_version}})")),
            _series("Drift score and adapting", "Max KL and the adapting flag per version.",
                    Q("max by (model_version) (ray_nhmm_drift_score)", "score {{model_version}}"),
                    Q("max by (model_version) (ray_nhmm_adapting)", "adapting {{model_version}}")),
            _bars("Partial fits", "Partial fits over the range by trigger (manual, drift) and "
                  "guard verdict.",
                  Q("sum by (trigger, accepted) (increase(ray_nhmm_partial_fit_total[$__range]))",
                    "{{trigger}} accepted={{accepted}}", table=True)),
            _series("Partial fit time p95", "Online-EM time of a partial fit in the replica.",
                    Q("histogram_quantile(0.95, sum by (le) (rate(ray_nhmm_partial_fit_duration_ms_bucket[$__rate_interval])))",
                      "p95"), unit="ms"),
        ]),
    ]  # fmt: skip
    return _with_rows(d, rows)


def _with_rows(d: dashboard.Dashboard, rows: list[tuple[str, list[Any]]]) -> dashboard.Dashboard:
    ids = iter(range(1, 1000))
    for title, panels in rows:
        d.with_row(dashboard.Row(title).id(next(ids)))
        for panel in panels:
            d.with_panel(panel.id(next(ids)))
    return d


#: ``file stem -> builder`` of every dashboard.
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "nhmm-node": node_dashboard,
    "nhmm-serve": serve_dashboard,
}


def queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every target in a dashboard JSON, in panel order, and each
    query variable's ``label_values`` metric as ``("$name", metric)``."""
    out = []
    for var in (doc.get("templating") or {}).get("list", []):
        query = var.get("query")
        if isinstance(query, str) and query.startswith("label_values("):
            out.append((f"${var['name']}", query.removeprefix("label_values(").split(",")[0]))
    for panel in doc.get("panels", []):
        out += [(panel["title"], t["expr"]) for t in panel.get("targets") or []]
    return out


def render() -> dict[str, str]:
    """``file name -> JSON text`` of every dashboard; a query naming a metric the project does
    not export raises ``ValueError``."""
    known = exported_series()
    out = {}
    for stem, build in DASHBOARDS.items():
        doc = json.loads(json.dumps(build().build(), cls=JSONEncoder))
        for title, expr in queries(doc):
            unknown = metric_names(expr) - set(known)
            if unknown:
                raise ValueError(f"{stem}: panel {title!r}: no such metric {sorted(unknown)}")
        out[f"{stem}.json"] = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.grafana.dashboards",
                                     description="Write the Grafana dashboards' JSON.")  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true",
                        help="Write nothing; exit 1 if a file differs from the generator.")  # fmt: skip
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            from training.io import atomic_write_text

            atomic_write_text(path, text)
    verb = "differ" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    if not stale:
        print(f"up to date: {args.out}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
