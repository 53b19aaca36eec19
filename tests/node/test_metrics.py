"""The node's metrics contract (``node/metrics.py``): what each call does to which series, the
HTTP exporter scraped for real, and the README table naming every metric."""

from __future__ import annotations

import math
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.config import PolicyHMMStrategyConfig
from node.metrics import METRICS
from node.metrics import PERP_ONLY
from node.metrics import NodeInfo
from node.metrics import NodeMetrics
from node.metrics import start_metrics_server
from node.run_dir import REASON_CODES
from serving.testing import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC


def row(i: int, state: int, verdict: str = "FLAT", **kw: object) -> dict:
    post = [0.1, 0.1, 0.1]
    if state >= 0:
        post[state] = 0.8
    base = {
        "ts": T0 + i * 10**9, "day": "2024-01-01", "state": state,
        "posterior": post if state >= 0 else [], "confidence": 0.8 if state >= 0 else -1.0,
        "action": "buy", "score": 0.2, "verdict": verdict, "status": "ok" if state >= 0 else "timeout",
        "latency_ms": 4.0, "loglik": -3.0, "drift": 0.25, "adapting": False, "features": [0.0],
        "equity": 1000.0, "position": 0.0, "mid": 42_000.0,
    }  # fmt: skip
    return {**base, **kw}


def test_samples_states_transitions_and_verdicts() -> None:
    m = NodeMetrics(NodeInfo("BTCUSDT.BINANCE"))
    assert m.value("nhmm_node_warming_up") == 1.0
    states = [0, 0, 1, -1, 1, 2, 0]
    verdicts = ["OK", "FLAT", "COOLDOWN", "LATENCY", "POS", "OK", "FLAT"]
    for i, (s, v) in enumerate(zip(states, verdicts, strict=True)):
        m.observe_sample(row(i, s, v), now=1_000.0 + i)
    assert m.value("nhmm_node_samples_total") == 7
    assert m.value("nhmm_node_warming_up") == 0.0
    assert m.value("nhmm_node_last_sample_timestamp_seconds") == 1_006.0
    assert m.value("nhmm_node_last_sample_event_timestamp_seconds") == T0 / 1e9 + 6
    assert [m.value("nhmm_node_state_samples_total", state=str(s)) for s in range(3)] == [3, 2, 1]
    # -1 (no result) is no state: 1 -> (none) -> 1 is not a change
    changes = {("0", "1"): 1, ("1", "2"): 1, ("2", "0"): 1, ("1", "0"): None, ("0", "0"): None}
    for (a, b), n in changes.items():
        assert m.value("nhmm_node_state_transitions_total", from_state=a, to_state=b) == n
    assert m.value("nhmm_node_state") == 0.0
    assert m.value("nhmm_node_entries_total") == 2
    blocked = {"COOLDOWN": 1, "LATENCY": 1, "POS": 1}
    for reason in REASON_CODES:  # every code exported from the start
        assert m.value("nhmm_node_blocks_total", reason=reason) == blocked.get(reason, 0)
    assert m.value("nhmm_node_inference_total", status="timeout") == 1
    assert m.value("nhmm_node_inference_total", status="ok") == 6
    assert m.value("nhmm_node_inference_latency_seconds_count") == 7
    assert m.value("nhmm_node_inference_latency_seconds_sum") == pytest.approx(0.028)
    assert m.value("nhmm_node_inference_latency_seconds_bucket", le="0.005") == 7
    assert m.value("nhmm_node_inference_latency_seconds_bucket", le="0.003") == 0
    h = -(0.8 * math.log2(0.8) + 2 * 0.1 * math.log2(0.1))
    assert m.value("nhmm_node_posterior_entropy_bits") == pytest.approx(h)
    assert m.value("nhmm_node_drift_score") == 0.25
    assert m.value("nhmm_node_actions_total", action="buy") == 7


def test_a_sample_without_result_keeps_the_last_confidence_and_drift() -> None:
    m = NodeMetrics(NodeInfo("BTCUSDT.BINANCE"))
    m.observe_sample(row(0, 2, confidence=0.9, drift=0.4))
    m.observe_sample(row(1, -1, drift=None, loglik=None, latency_ms=None))
    assert m.value("nhmm_node_state") == -1.0
    assert m.value("nhmm_node_confidence") == 0.9
    assert m.value("nhmm_node_drift_score") == 0.4
    assert m.value("nhmm_node_inference_latency_seconds_count") == 1


def test_money_drawdown_from_the_running_or_the_given_peak() -> None:
    m = NodeMetrics(NodeInfo("BTCUSDT.BINANCE", max_drawdown=40.0, max_position=0.02))
    for i, eq in enumerate([1000.0, 1030.0, 1010.0]):
        m.observe_sample(row(i, 0, equity=eq, position=0.01 * i))
    assert m.value("nhmm_node_equity_peak") == 1030.0
    assert m.value("nhmm_node_drawdown") == 20.0
    assert m.value("nhmm_node_pnl") == 10.0  # no pnl column: equity minus the first equity
    assert m.value("nhmm_node_position") == 0.02
    assert (m.value("nhmm_node_max_drawdown"), m.value("nhmm_node_max_position")) == (40.0, 0.02)
    m.observe_sample(row(3, 0, equity=1010.0, pnl=-5.0), peak=1100.0)  # the persisted peak wins
    assert (m.value("nhmm_node_drawdown"), m.value("nhmm_node_pnl")) == (90.0, -5.0)


def test_orders_fills_killswitch_and_model() -> None:
    m = NodeMetrics(NodeInfo("BTCUSDT.BINANCE"))
    m.observe_order("BUY")
    m.observe_order("sell", "exit")
    m.observe_fill("BUY", 0.001, 42_000.0, 0.0042, "maker")
    m.observe_fill("SELL", 0.001, 42_010.0, 0.0042)
    assert m.value("nhmm_node_orders_total", kind="entry", side="buy") == 1
    assert m.value("nhmm_node_orders_total", kind="exit", side="sell") == 1
    assert m.value("nhmm_node_fills_total", side="buy", liquidity="MAKER") == 1
    assert m.value("nhmm_node_fill_notional_total", side="sell") == pytest.approx(42.01)
    assert m.value("nhmm_node_fees_total") == pytest.approx(0.0084)
    for engaged in (True, True, False, True):  # two trips: engaged twice from disengaged
        m.set_killswitch(engaged, "DD")
    assert m.value("nhmm_node_kill_switch_engaged") == 1.0
    assert m.value("nhmm_node_kill_switch_trips_total", reason="DD") == 2
    m.set_model("v0001-a", "live")
    m.observe_sample(row(0, 0), model_version="v0002-b")
    assert m.value("nhmm_node_model_info", model_version="v0002-b", model_ref="live") == 1.0
    assert m.value("nhmm_node_model_info", model_version="v0001-a", model_ref="live") is None


def test_funding_only_on_perps() -> None:
    spot = NodeMetrics(NodeInfo("BTCUSDT.BINANCE"))
    spot.observe_sample(row(0, 0))
    assert spot.value("nhmm_node_time_to_funding_seconds") is None
    with pytest.raises(ValueError, match="spot"):
        spot.observe_funding(0.0001)
    perp = NodeMetrics(NodeInfo("BTCUSDT-PERP.BINANCE", market="perp"))
    perp.observe_sample(row(0, 0, ts=T0 + (7 * 3600 + 59 * 60) * 10**9))  # 07:59 UTC
    assert perp.value("nhmm_node_time_to_funding_seconds") == 60.0
    perp.observe_funding(0.0001)
    assert perp.value("nhmm_node_funding_rate_bp") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="market"):
        NodeInfo("X", market="usdm")


def test_info_from_the_strategy_config() -> None:
    cfg = PolicyHMMStrategyConfig(instrument_id="BTCUSDT.BINANCE", latency_budget_ms=20.0,
                                  max_drawdown=5.0, trading_enabled=True)  # fmt: skip
    info = NodeInfo.from_strategy(cfg, "testnet")
    assert info == NodeInfo("BTCUSDT.BINANCE", "spot", "testnet", 20.0, 5.0, 0.01, True)
    assert NodeInfo.from_strategy({**{f: getattr(cfg, f) for f in
                                      ("instrument_id", "market", "latency_budget_ms",
                                       "max_drawdown", "max_position", "trading_enabled")}},
                                  "testnet") == info  # fmt: skip
    m = NodeMetrics(info)
    assert m.value("nhmm_node_latency_budget_seconds") == 0.02
    assert m.value("nhmm_node_trading_enabled") == 1.0
    assert m.value("nhmm_node_info", instrument_id="BTCUSDT.BINANCE", market="spot",
                   mode="testnet") == 1.0  # fmt: skip


def test_the_http_exporter_serves_every_metric_of_the_contract() -> None:
    m = NodeMetrics(NodeInfo("BTCUSDT-PERP.BINANCE", market="perp"))
    m.observe_sample(row(0, 1, "OK"))
    port = free_port()
    server = start_metrics_server(m, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels, _) in METRICS.items():
        fam = families.get(name.removesuffix("_total"))
        assert fam is not None and fam.type == kind, name
        for sample in fam.samples:
            assert set(labels) <= set(sample.labels), (name, sample)
    samples = {s.name: s.value for f in families.values() for s in f.samples if not s.labels}
    assert samples["nhmm_node_samples_total"] == 1.0
    assert samples["nhmm_node_state"] == 1.0


def test_readme_documents_every_metric() -> None:
    text = README.read_text()
    section = text[text.index("## Node metrics") :]
    section = section[: section.index("\n## ", 4)]
    listed = set(re.findall(r"`(nhmm_node_\w+)`", section))
    assert listed == set(METRICS), (set(METRICS) - listed, listed - set(METRICS))
    for name in PERP_ONLY:
        assert name in section


def test_info_defaults_are_the_strategy_config_defaults() -> None:
    cfg = PolicyHMMStrategyConfig(instrument_id="X.BINANCE")
    assert NodeInfo.from_strategy({"instrument_id": "X.BINANCE"}, "replay") == (
        NodeInfo.from_strategy(cfg, "replay")
    )
