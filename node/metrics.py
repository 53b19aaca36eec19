"""The node's Prometheus metrics: one :class:`NodeMetrics` per node, on its own registry.

The strategy (or :mod:`ops.prometheus.feed`, replaying a RUN_DIR) drives it: one
:meth:`NodeMetrics.observe_sample` per timeline row (the dict :data:`node.run_dir.SAMPLE_SCHEMA`
describes), :meth:`~NodeMetrics.observe_order` per order sent, :meth:`~NodeMetrics.observe_fill`
per fill, :meth:`~NodeMetrics.set_killswitch` and :meth:`~NodeMetrics.set_model` on changes.
:func:`start_metrics_server` serves it over HTTP (``--metrics-port``) for Prometheus; the alert
rules (``ops/prometheus/rules.yml``) and dashboards (``ops/grafana/``) read these names, which
:data:`METRICS` lists with their type and labels (the README's table is the same list).

>>> m = NodeMetrics(NodeInfo("BTCUSDT-PERP.BINANCE", market="perp", max_drawdown=50.0))
>>> m.observe_sample({"ts": 1_704_067_200 * 10**9 + 3_600 * 10**9, "state": 1,
...                   "posterior": [0.25, 0.5, 0.25], "confidence": 0.5, "action": "buy",
...                   "verdict": "COOLDOWN", "status": "ok", "latency_ms": 2.0, "drift": 0.1,
...                   "adapting": False, "equity": 990.0, "position": 0.001, "mid": 42_000.0},
...                  peak=1_000.0)
>>> [m.value(n) for n in ("nhmm_node_posterior_entropy_bits", "nhmm_node_drawdown",
...                       "nhmm_node_time_to_funding_seconds")]
[1.5, 10.0, 25200.0]
>>> m.value("nhmm_node_blocks_total", reason="COOLDOWN"), m.value("nhmm_node_blocks_total", reason="KILL")
(1.0, 0.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram

from node.run_dir import ALLOWED
from node.run_dir import REASON_CODES

__all__ = [
    "DEFAULT_METRICS_PORT",
    "FUNDING_INTERVAL_S",
    "LATENCY_BUCKETS_S",
    "METRICS",
    "PERP_ONLY",
    "NodeInfo",
    "NodeMetrics",
    "start_metrics_server",
]

#: The port ``--metrics-port`` defaults to (the Prometheus config scrapes it).
DEFAULT_METRICS_PORT = 9464
#: Binance USD-M perpetuals fund every 8 h, at 00:00, 08:00 and 16:00 UTC.
FUNDING_INTERVAL_S = 8 * 3600
#: Inference latency buckets (seconds): in-process ~0.05 ms, Serve over HTTP ~5 ms, budget 50 ms.
LATENCY_BUCKETS_S = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.013, 0.02, 0.035, 0.05,
                     0.075, 0.1, 0.25, 0.5, 1.0, 2.5)  # fmt: skip

#: ``name -> (type, labels, help)``: every metric the node exports (counters with ``_total``).
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "nhmm_node_info": ("gauge", ("instrument_id", "market", "mode"), "1; what this node trades and how (backtest, replay, testnet, demo, live)."),
    "nhmm_node_start_time_seconds": ("gauge", (), "Unix time the metrics started."),
    "nhmm_node_trading_enabled": ("gauge", (), "1 when orders are submitted (TRADING_ENABLED), 0 when decisions are only logged."),
    "nhmm_node_warming_up": ("gauge", (), "1 until the first inference sample (the feature warm-up)."),
    "nhmm_node_samples_total": ("counter", (), "Feature samples inferred and decided on (timeline rows)."),
    "nhmm_node_last_sample_timestamp_seconds": ("gauge", (), "Wall-clock unix time of the last sample (start time before the first)."),
    "nhmm_node_last_sample_event_timestamp_seconds": ("gauge", (), "Exchange time of the last sample."),
    "nhmm_node_state": ("gauge", (), "Filtered MAP regime of the last sample (-1: no inference result)."),
    "nhmm_node_state_samples_total": ("counter", ("state",), "Samples per filtered MAP regime (the state histogram)."),
    "nhmm_node_state_transitions_total": ("counter", ("from_state", "to_state"), "Changes of regime between consecutive results (from != to)."),
    "nhmm_node_posterior_entropy_bits": ("gauge", (), "Entropy of the last filtered posterior, bits."),
    "nhmm_node_confidence": ("gauge", (), "Confidence of the last result."),
    "nhmm_node_actions_total": ("counter", ("action",), "Model actions (buy, sell, flat) per sample."),
    "nhmm_node_blocks_total": ("counter", ("reason",), "Samples blocked, by guardrail reason code (every code from 0)."),
    "nhmm_node_entries_total": ("counter", (), "Entries the guardrails allowed (verdict OK)."),
    "nhmm_node_inference_total": ("counter", ("status",), "Inference answers by status (ok, timeout, error)."),
    "nhmm_node_inference_latency_seconds": ("histogram", (), "Inference round trip the strategy measured, seconds."),
    "nhmm_node_latency_budget_seconds": ("gauge", (), "The LATENCY guardrail's budget, seconds."),
    "nhmm_node_loglik": ("gauge", (), "Per-sample log-likelihood of the last result."),
    "nhmm_node_drift_score": ("gauge", (), "Drift score of the last result (max per-feature KL; 0 until known)."),
    "nhmm_node_adapting": ("gauge", (), "1 while the served model version is adapting."),
    "nhmm_node_time_to_funding_seconds": ("gauge", (), "Perps: exchange-time seconds to the next funding (00/08/16 UTC)."),
    "nhmm_node_funding_rate_bp": ("gauge", (), "Perps: last funding rate, basis points (live funding updates)."),
    "nhmm_node_position": ("gauge", (), "Net position, base units."),
    "nhmm_node_max_position": ("gauge", (), "Position limit (POS guardrail), base units."),
    "nhmm_node_mid_price": ("gauge", (), "Mid price of the last sample."),
    "nhmm_node_equity": ("gauge", (), "Equity the DD guardrail watches, quote."),
    "nhmm_node_equity_peak": ("gauge", (), "Equity peak DD measures from, quote."),
    "nhmm_node_drawdown": ("gauge", (), "Equity peak minus equity, quote."),
    "nhmm_node_max_drawdown": ("gauge", (), "Drawdown limit (DD guardrail), quote."),
    "nhmm_node_pnl": ("gauge", (), "PnL after fees, quote (starting inventory's drift left out)."),
    "nhmm_node_orders_total": ("counter", ("kind", "side"), "Orders submitted, by kind (entry, exit) and side."),
    "nhmm_node_fills_total": ("counter", ("side", "liquidity"), "Fills by side and liquidity (MAKER, TAKER)."),
    "nhmm_node_fill_notional_total": ("counter", ("side",), "Filled notional, quote."),
    "nhmm_node_fees_total": ("counter", (), "Commissions paid, in the commission currency."),
    "nhmm_node_kill_switch_engaged": ("gauge", (), "1 while the kill switch blocks trading."),
    "nhmm_node_kill_switch_trips_total": ("counter", ("reason",), "Kill switch trips by reason (DD, CRASH, MANUAL...)."),
    "nhmm_node_model_info": ("gauge", ("model_version", "model_ref"), "1 for the model version answering now."),
}  # fmt: skip
#: Exported by perp nodes only (a spot node has no funding).
PERP_ONLY: tuple[str, ...] = ("nhmm_node_time_to_funding_seconds", "nhmm_node_funding_rate_bp")


@dataclass(frozen=True)
class NodeInfo:
    """What a node trades, how, and the limits its guardrails compare against."""

    instrument_id: str
    market: str = "spot"
    mode: str = "backtest"
    latency_budget_ms: float = 50.0
    max_drawdown: float = 100.0
    max_position: float = 0.01
    trading_enabled: bool = False

    def __post_init__(self) -> None:
        if self.market not in ("spot", "perp"):
            raise ValueError(f"NodeInfo.market: {self.market!r} is not 'spot' or 'perp'")

    @classmethod
    def from_strategy(cls, strategy: Mapping[str, Any] | Any, mode: str) -> NodeInfo:
        """From a ``PolicyHMMStrategyConfig`` or its ``config.json`` dict (``strategy``; a key
        it lacks keeps this class's default, the strategy config's own)."""
        defaults = {f.name: f.default for f in fields(cls)}

        def get(name: str) -> Any:
            if isinstance(strategy, Mapping):
                return strategy.get(name, defaults.get(name))
            return getattr(strategy, name)

        return cls(
            instrument_id=str(get("instrument_id")),
            market=str(get("market")),
            mode=mode,
            latency_budget_ms=float(get("latency_budget_ms")),
            max_drawdown=float(get("max_drawdown")),
            max_position=float(get("max_position")),
            trading_enabled=bool(get("trading_enabled")),
        )


def _entropy_bits(posterior: list[float]) -> float:
    """Shannon entropy of a probability vector, bits.

    >>> _entropy_bits([0.5, 0.5, 0.0])
    1.0
    """
    return float(-sum(p * math.log2(p) for p in posterior if p > 0.0)) + 0.0


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else ``None``."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


class NodeMetrics:
    """The node's metrics (:data:`METRICS`) on ``registry`` (a new one by default)."""

    def __init__(self, info: NodeInfo, registry: CollectorRegistry | None = None) -> None:
        self.info = info
        self.registry = registry if registry is not None else CollectorRegistry()
        self._m: dict[str, Any] = {}
        for name, (kind, labels, doc) in METRICS.items():
            if name in PERP_ONLY and info.market != "perp":
                continue
            if kind == "counter":
                self._m[name] = Counter(name.removesuffix("_total"), doc, labels,
                                        registry=self.registry)  # fmt: skip
            elif kind == "gauge":
                self._m[name] = Gauge(name, doc, labels, registry=self.registry)
            else:
                self._m[name] = Histogram(name, doc, labels, buckets=LATENCY_BUCKETS_S,
                                          registry=self.registry)  # fmt: skip
        now = time.time()
        self._m["nhmm_node_info"].labels(info.instrument_id, info.market, info.mode).set(1)
        for name, value in (
            ("nhmm_node_start_time_seconds", now),
            ("nhmm_node_last_sample_timestamp_seconds", now),
            ("nhmm_node_warming_up", 1),
            ("nhmm_node_state", -1),
            ("nhmm_node_trading_enabled", int(info.trading_enabled)),
            ("nhmm_node_latency_budget_seconds", info.latency_budget_ms / 1e3),
            ("nhmm_node_max_drawdown", info.max_drawdown),
            ("nhmm_node_max_position", info.max_position),
            ("nhmm_node_kill_switch_engaged", 0),
        ):
            self._m[name].set(value)
        for reason in REASON_CODES:  # every code from 0: rates and alerts see them at once
            self._m["nhmm_node_blocks_total"].labels(reason)
        self._m["nhmm_node_entries_total"].inc(0)
        self._last_state: int | None = None
        self._peak: float | None = None
        self._equity0: float | None = None
        self._model: tuple[str, str] | None = None
        self._killed = False

    def value(self, name: str, **labels: str) -> float | None:
        """The current value of a sample (``name`` as exported, e.g. ``..._total``); for tests.

        ``None`` when that series does not exist.
        """
        return self.registry.get_sample_value(name, labels or None)

    # -- what the strategy reports

    def observe_sample(
        self,
        row: Mapping[str, Any],
        *,
        model_version: str | None = None,
        peak: float | None = None,
        now: float | None = None,
    ) -> None:
        """One decided sample: a timeline row (:data:`node.run_dir.SAMPLE_SCHEMA` keys; ``pnl``
        optional). ``peak`` is the guardrails' persisted equity peak (default: the highest
        equity seen here); ``model_version`` (or the row's) updates the model info."""
        m = self._m
        wall = time.time() if now is None else now
        m["nhmm_node_samples_total"].inc()
        m["nhmm_node_warming_up"].set(0)
        m["nhmm_node_last_sample_timestamp_seconds"].set(wall)
        ts_s = int(row["ts"]) / 1e9
        m["nhmm_node_last_sample_event_timestamp_seconds"].set(ts_s)
        version = model_version or row.get("model_version")
        if version:
            self.set_model(str(version), self._model[1] if self._model else "")
        state = int(row.get("state", -1))
        m["nhmm_node_state"].set(state)
        if state >= 0:
            m["nhmm_node_state_samples_total"].labels(str(state)).inc()
            if self._last_state is not None and self._last_state != state:
                m["nhmm_node_state_transitions_total"].labels(str(self._last_state),
                                                              str(state)).inc()  # fmt: skip
            self._last_state = state
            posterior = list(row.get("posterior") or [])
            if posterior:
                m["nhmm_node_posterior_entropy_bits"].set(_entropy_bits(posterior))
            for key, name in (("confidence", "nhmm_node_confidence"),
                              ("loglik", "nhmm_node_loglik"), ("drift", "nhmm_node_drift_score")):  # fmt: skip
                v = _finite(row.get(key))
                if v is not None:
                    m[name].set(v)
        m["nhmm_node_adapting"].set(int(bool(row.get("adapting"))))
        m["nhmm_node_actions_total"].labels(str(row.get("action", "flat"))).inc()
        verdict = str(row.get("verdict", ""))
        if verdict == ALLOWED:
            m["nhmm_node_entries_total"].inc()
        elif verdict in REASON_CODES:
            m["nhmm_node_blocks_total"].labels(verdict).inc()
        m["nhmm_node_inference_total"].labels(str(row.get("status", "ok"))).inc()
        latency = _finite(row.get("latency_ms"))
        if latency is not None and latency >= 0:
            m["nhmm_node_inference_latency_seconds"].observe(latency / 1e3)
        if self.info.market == "perp":
            m["nhmm_node_time_to_funding_seconds"].set(
                FUNDING_INTERVAL_S - (int(row["ts"]) // 10**9) % FUNDING_INTERVAL_S
            )
        self._observe_money(row, peak)

    def _observe_money(self, row: Mapping[str, Any], peak: float | None) -> None:
        m = self._m
        for key, name in (("position", "nhmm_node_position"), ("mid", "nhmm_node_mid_price")):
            v = _finite(row.get(key))
            if v is not None:
                m[name].set(v)
        equity = _finite(row.get("equity"))
        if equity is None:
            return
        if self._equity0 is None:
            self._equity0 = equity
        top = max(equity, self._peak if self._peak is not None else equity)
        self._peak = top if peak is None else float(peak)
        m["nhmm_node_equity"].set(equity)
        m["nhmm_node_equity_peak"].set(self._peak)
        m["nhmm_node_drawdown"].set(max(self._peak - equity, 0.0))
        pnl = _finite(row.get("pnl"))
        m["nhmm_node_pnl"].set(pnl if pnl is not None else equity - self._equity0)

    def observe_order(self, side: str, kind: str = "entry") -> None:
        """An order submitted: ``side`` buy/sell, ``kind`` entry/exit."""
        self._m["nhmm_node_orders_total"].labels(kind, side.lower()).inc()

    def observe_fill(
        self,
        side: str,
        quantity: float,
        price: float,
        commission: float = 0.0,
        liquidity: str = "MAKER",
    ) -> None:
        """A fill (an order's ``OrderFilled``): side, base quantity, price, commission paid."""
        side = side.lower()
        self._m["nhmm_node_fills_total"].labels(side, liquidity.upper()).inc()
        self._m["nhmm_node_fill_notional_total"].labels(side).inc(abs(quantity * price))
        if commission > 0:
            self._m["nhmm_node_fees_total"].inc(commission)

    def observe_funding(self, rate: float) -> None:
        """A funding rate update (fraction per period, e.g. 0.0001 = 1 bp); perps only."""
        if self.info.market != "perp":
            raise ValueError(f"observe_funding: {self.info.instrument_id} is spot (no funding)")
        self._m["nhmm_node_funding_rate_bp"].set(float(rate) * 1e4)

    def set_killswitch(self, engaged: bool, reason: str = "") -> None:
        """The kill switch's state; a trip (not engaged -> engaged) is counted with ``reason``."""
        if engaged and not self._killed:
            self._m["nhmm_node_kill_switch_trips_total"].labels(reason or "UNKNOWN").inc()
        self._killed = bool(engaged)
        self._m["nhmm_node_kill_switch_engaged"].set(int(self._killed))

    def set_model(self, version: str, ref: str = "") -> None:
        """The model version answering now (``ref`` the alias asked for); one series at a time."""
        if self._model == (version, ref):
            return
        info = self._m["nhmm_node_model_info"]
        if self._model is not None:
            info.remove(*self._model)
        self._model = (version, ref)
        info.labels(version, ref).set(1)


def start_metrics_server(
    metrics: NodeMetrics, port: int = DEFAULT_METRICS_PORT, addr: str = "127.0.0.1"
) -> Any:
    """Serve ``metrics`` on ``http://addr:port/metrics`` from a daemon thread; returns the
    server (``.shutdown()`` stops it). Loopback by default: bind ``0.0.0.0`` only behind a
    firewall (Prometheus in a container, another host)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
