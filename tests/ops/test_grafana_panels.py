"""Every dashboard panel's query, taken from the generated JSON, returns data from a REAL
Prometheus (the Debian binary on loopback) that runs the repo's ``prometheus.yml`` and
``rules.yml`` against:

- the LIVE node: ``python node/run.py --replay`` (a real Nautilus ``TradingNode`` and Binance
  adapter against the loopback venue) on the real USD-M recording with ``@markPrice@1s`` frames
  added (perp: funding metrics; tests/training/data/funding_setup.py), its
  ``--metrics-port`` scraped while it runs;
- a real Serve on a ``ray start --head`` instance, found through Ray's own service-discovery file
  (the ``ray`` job as configured), that the node asks for every sample (``--serve``): the node's
  inference and Serve's metrics come from the same run. An alias request and two manual partial
  fits (nothing in a node run asks for those) follow, on the run's own feature vectors.

A query naming a metric Prometheus never scraped fails, even when the rest of it returns data.
What Prometheus scraped last equals the node's RUN_DIR (``summary.json``, ``timeline.parquet``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from ops.grafana.dashboards import OUT_DIR
from ops.grafana.dashboards import queries
from ops.prometheus import CONFIG
from ops.prometheus import RULES
from ops.prometheus import metric_names
from serving.testing import local_serve
from tests.node.live.node_process import start_node
from tests.node.venue.wire import HMAC_SECRET
from tests.prometheus_setup import run_prometheus
from tests.ray_setup import start_ray_head
from tests.strategy_setup import CLI_CONFIG
from tests.training.data import funding_setup
from tests.waiting import wait_for
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog

pytestmark = pytest.mark.slow
#: Grafana's variables as the test resolves them (1 s scrapes; the whole test in the range).
GRAFANA_VARS = {"$__rate_interval": "20s", "$__range": "15m", "$__interval": "5s",
                "$instance": ".+"}  # fmt: skip
#: The real USD-M recording (345 s: ~17 s at 20x). This node asks Serve off its event loop, so
#: it keeps up at 20x: every sample answered, none LATENCY, 4 fills (as at 10x, 2-4).
SPEED = "20"
#: Lookback of the "what was scraped last" queries (the node's series are stale once it stops).
LAST = "[15m]"


@dataclass(frozen=True)
class Stack:
    prometheus: str
    serve: str
    run_dir: Path
    start: float
    #: When the node had stopped (its exporter with it).
    end: float
    #: The node's summary.json.
    summary: dict[str, Any]


def api(url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def resolve(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def query_problem(url: str, expr: str, start: float) -> str | None:
    """Why ``expr`` (Grafana variables resolved) does not show data, or ``None`` when it
    returns at least one series with a finite value over [start, now] and every metric it
    names was scraped."""
    scraped = set(api(url, "label/__name__/values"))
    missing = metric_names(expr) - scraped
    if missing:
        return f"names metrics nothing exports: {sorted(missing)}"
    data = api(url, "query_range", query=resolve(expr), start=start, end=time.time(), step="1s")
    if not data["result"]:
        return "no series"
    values = [float(v) for s in data["result"] for _, v in s["values"]]
    if not np.isfinite(values).any():
        return "no finite value"
    return None


@pytest.fixture(scope="module")
def model(
    synth_model: tuple[MarketCatalog, Registry], tmp_path_factory: pytest.TempPathFactory
) -> Registry:
    """``candidate``, trained on two synthetic days (the model the live node tests trade): a
    copy of the ops tests' registry, as this module's Serve registers partial-fit children."""
    root = tmp_path_factory.mktemp("panels_model") / "registry"
    shutil.copytree(synth_model[1].root, root)
    return Registry(root)


def _config(node_port: int, ray_sd: Path) -> dict[str, Any]:
    """The repo's Prometheus config with the test's targets, 1 s scrapes (the node's 0.5 s)
    and evaluations."""
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    cfg["rule_files"] = [str(RULES)]
    for job in cfg["scrape_configs"]:
        job.pop("scrape_interval", None)
        if job["job_name"] == "nhmm-node":  # 0.5 s: a few scrapes of its final values
            job["scrape_interval"] = "500ms"  # between its stop (~2 s) and its exporter's
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{node_port}"]
        else:
            job["file_sd_configs"][0]["files"] = [str(ray_sd)]
            job["file_sd_configs"][0]["refresh_interval"] = "1s"
    return cfg


@pytest.fixture(scope="module")
def stack(
    model: Registry, ws_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Serve on a ``ray start --head``, the live node asking it while Prometheus scrapes both;
    yields once the node has stopped (RUN_DIR written) and the test's own Serve calls are done."""
    d = tmp_path_factory.mktemp("panels")
    state = d / "node"
    os.environ["RAY_metrics_report_interval_ms"] = "500"  # noqa: SIM112 (read by `ray start`)
    try:
        head = start_ray_head()
    finally:
        del os.environ["RAY_metrics_report_interval_ms"]  # noqa: SIM112
    try:
        args = {"alias_ttl_s": 0.0, "drift_flush_s": 0.05}
        with contextlib.ExitStack() as running:
            serve_url = running.enter_context(
                local_serve(model.root, args, address=head.gcs_address)
            )
            start = time.time()
            recording, _ = funding_setup.build(ws_dir, d, seconds=None)  # with @markPrice@1s
            env = {"TRADING_ENABLED": "true", "BINANCE_FUTURES_TESTNET_API_KEY": "usdm-key",
                   "BINANCE_FUTURES_TESTNET_API_SECRET": HMAC_SECRET}  # fmt: skip
            node = start_node(
                ["--account", "usdm", "--symbol", "BTCUSDT", "--replay", str(recording),
                 "--speed", SPEED, "--model", "candidate", "--registry", str(model.root),
                 "--serve", serve_url, "--state-dir", str(state), "--out", str(state / "run"),
                 *CLI_CONFIG],  # the test model's loose settings: LATENCY never fires
                env, d, d / "node.log",
            )  # fmt: skip
            running.callback(lambda: node.proc.poll() is None and node.kill9())
            sd = head.temp_dir / "prom_metrics_service_discovery.json"
            prom_url = running.enter_context(run_prometheus(_config(node.port, sd), d))
            wait_for(lambda: api(prom_url, "query", query='up{job="ray"} == 1')["result"], 60,
                     "Prometheus scraping Ray through its service-discovery file")  # fmt: skip
            wait_for(lambda: api(prom_url, "query", query='up{job="nhmm-node"} == 1')["result"],
                     60, "Prometheus scraping the node")  # fmt: skip
            code = node.finish(180)
            end = time.time()
            assert code == 0, node.output[-3000:]
            run = state / "run"
            summary = json.loads((run / "summary.json").read_text())
            _alias_and_partial_fits(serve_url, run)
            yield Stack(prom_url, serve_url, run, start, end, summary)
    finally:
        head.stop()


def _alias_and_partial_fits(url: str, run: Path) -> None:
    """What a node run does not ask Serve for: one alias request (model info) and two partial
    fits a few scrapes apart (a rate needs a series to increase between two scrapes), on the
    run's own feature vectors with the version it traded."""
    version = json.loads((run / "config.json").read_text())["model"]["version"]
    features = pq.read_table(run / "timeline.parquet").column("features").to_pylist()
    assert len(features) >= 50
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/infer", json={"schema_version": "FEATURES_V1", "model": "candidate",
                                          "items": [{"features": f} for f in features[:50]]})  # fmt: skip
        assert r.status_code == 200, r.text
        for i in range(2):
            time.sleep(2.5 * i)
            r = http.post("/v1/partial_fit", json={"schema_version": "FEATURES_V1",
                                                    "model": version, "X": features[:200]})  # fmt: skip
            assert r.status_code == 200, r.text


def test_every_panel_query_returns_data(stack: Stack) -> None:
    exprs = [(f"{path.stem}: {title}", expr) for path in sorted(OUT_DIR.glob("*.json"))
             for title, expr in queries(json.loads(path.read_text()))]  # fmt: skip
    assert len(exprs) > 40

    def problems() -> dict[str, str]:
        out = {}
        for where, expr in exprs:
            problem = query_problem(stack.prometheus, expr, stack.start)
            if problem:
                out[f"{where}: {expr}"] = problem
        return out

    deadline = time.monotonic() + 60  # Ray exports every 0.5 s, Prometheus scrapes every 1 s
    while (found := problems()) and time.monotonic() < deadline:
        time.sleep(1.0)
    assert found == {}


def test_a_query_naming_a_metric_nothing_exports_fails(stack: Stack) -> None:
    assert query_problem(stack.prometheus, "max(nhmm_node_samples_total)", stack.start) is None
    bogus = "max(nhmm_node_sample_total)"  # a typo of a real name
    assert query_problem(stack.prometheus, bogus, stack.start) == (
        "names metrics nothing exports: ['nhmm_node_sample_total']"
    )
    hidden = "max(nhmm_node_samples_total) or max(ray_nhmm_drift_klx)"  # data from one side only
    assert "ray_nhmm_drift_klx" in (query_problem(stack.prometheus, hidden, stack.start) or "")


def test_the_live_run_reaches_prometheus_exactly(stack: Stack) -> None:
    """The node's counters and gauges as Prometheus scraped them last equal its RUN_DIR."""
    s = stack.summary
    timeline = pq.read_table(stack.run_dir / "timeline.parquet")
    assert s["samples"] > 100 and s["fills_seen"] >= 1 and s["funding_updates"] >= 1

    def value(q: str) -> float:
        result = api(stack.prometheus, "query", query=q)["result"]
        return float(result[0]["value"][1]) if result else float("nan")

    def last(metric: str, agg: str = "sum") -> str:
        return f"{agg}(last_over_time({metric}{LAST}))"

    checks = {
        last("nhmm_node_samples_total"): s["samples"],
        last('nhmm_node_inference_total{status="ok"}'): s["inference_status"]["ok"],
        last("nhmm_node_entries_total"): s["guardrails"]["OK"],
        last("nhmm_node_orders_total"): s["orders_seen"],
        last("nhmm_node_fills_total"): s["fills_seen"],
        last("nhmm_node_position", "max"): s["final_position"],
        # the gauge is the run's mark; the RUN_DIR's last PnL is net of closing what is open
        last("nhmm_node_pnl", "max"): timeline.column("pnl")[-1].as_py() + s["close_cost"],
    }
    checks |= {last(f'nhmm_node_blocks_total{{reason="{reason}"}}'): n
               for reason, n in s["guardrails"].items() if reason != "OK"}  # fmt: skip
    for q, want in checks.items():
        wait_for(lambda q=q, want=want: np.isclose(value(q), want), 20, f"{q} == {want}")
    info = 'nhmm_node_info{market="perp",mode="replay",instance=~".+"}'
    assert value(last(info, "count")) == 1
    version = f'nhmm_node_model_info{{model_version="{s["model_version"]}"}}'
    assert value(last(version, "count")) == 1
    assert np.isfinite(value(last("nhmm_node_time_to_funding_seconds", "max")))
    # Serve answered the node's every sample with the version the node traded (and the
    # test's alias request of 50 rows).
    traded = f'model_version="{s["model_version"]}"'
    served = last(f"ray_nhmm_state_total{{{traded}}}")
    want = s["inference_status"]["ok"] + 50
    wait_for(lambda: value(served) >= want, 20, f"{served} >= {want}")


def test_alert_rules_evaluate_without_errors_on_real_series(stack: Stack) -> None:
    def groups() -> list[dict]:
        return api(stack.prometheus, "rules")["groups"]

    wait_for(lambda: all(g["lastEvaluation"] > "2000" for g in groups()), 20, "evaluations")
    rules = [r for g in groups() for r in g["rules"]]
    assert {r["name"] for r in rules} >= {"NhmmKillSwitchEngaged", "NhmmServeAliasChanged"}
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad
    fired = api(stack.prometheus, "query_range", query='ALERTS{alertstate="firing"}',
                start=stack.start, end=stack.end, step="1s")["result"]  # fmt: skip
    never = {"NhmmKillSwitchEngaged", "NhmmNodeDown", "NhmmNodeAbsent", "NhmmRayMetricsDown"}
    assert not {a["metric"]["alertname"] for a in fired} & never  # while the node ran
    # The node has stopped (a replay ends): the down alert sees it.
    wait_for(lambda: any(a["labels"]["alertname"] == "NhmmNodeDown"
                         for a in api(stack.prometheus, "alerts")["alerts"]), 20, "NhmmNodeDown")  # fmt: skip
