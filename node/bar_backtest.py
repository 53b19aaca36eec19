"""The regime strategy on 1-minute klines in a Nautilus ``BacktestEngine`` (``--bars 1m``).

:class:`BarPolicyStrategy` is :class:`~node.strategy.PolicyHMMStrategy` fed by FEATURES_BARS_V1
(:mod:`node.bar_feed`) instead of the book: the same model client, the same pure decision rules,
guardrails, entries and exits, on one sample per closed bar. A bar carries no book, so the
market view of a sample is the one the training pipeline and the trade simulator use
(:func:`training.features.bars.offline.market_view`): mid and microprice at the close, a one-tick
spread around it. Orders are sent on bar closes as post-only limits one tick off the close and
fill when a later bar trades through them (Nautilus bar execution on an ``L1_MBP`` venue, the
instrument's maker/taker fees, the fees of :mod:`training.costs`).

:func:`run_bar_backtest` writes a RUN_DIR (:mod:`node.run_dir`) with the same files and
``summary.json`` keys as :func:`node.backtest.run_backtest`, so ``nhmm acceptance`` and
``nhmm report`` read it. ``trade_from_ns`` lets the bars before it warm the features up without
trading: the model's held-out tail is backtested with features computed as in training.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple

import msgspec
import numpy as np
import pyarrow as pa
from nautilus_trader.model.data import Bar

from node import run_dir
from node.backtest import IN_PROCESS_LATENCY_MS
from node.backtest import VenueOptions
from node.backtest import backtest_costs
from node.backtest import in_sample_days
from node.bar_feed import NautilusBarFeed
from node.config import PolicyHMMStrategyConfig
from node.config import label_horizon_s
from node.engine import run_past_last_event
from node.strategy import PolicyHMMStrategy
from node.summary import adaptation_report
from node.summary import finite_or_none
from node.summary import pnl_curve
from node.summary import strategy_figures
from node.summary import summarise
from serving.client import InProcessModelClient
from training.data.sources.binance_public.bars import bar_type_for
from training.errors import SchemaMismatchError
from training.features import FeatureSchema
from training.features.bars import FEATURES_BARS_VERSION
from training.features.bars import BarFeatureSchema
from training.features.bars import BarSample
from training.features.bars.offline import market_view

if TYPE_CHECKING:
    from training.artifacts.registry import Registry
    from training.data.catalog import MarketCatalog

__all__ = ["BarPolicyStrategy", "BarView", "bar_view", "run_bar_backtest"]


class BarView(NamedTuple):
    """A bar sample as the strategy's sample: the FEATURES_V1 sample's fields it reads."""

    ts_ns: int
    session: int
    ready: bool
    book_ok: bool
    z: np.ndarray
    mid: float
    spread_bp: float
    realised_vol_bp: float
    microprice: float
    vwap: float
    best_bid: float
    best_ask: float


def bar_view(s: BarSample, tick: float) -> BarView:
    """``s`` with the market view of training and the simulator (one tick around the close).

    >>> s = BarSample(60, np.zeros(9), np.zeros(9), True, 0, 10.0, 11.0, 9.0, 10.0, 5.0, 10.2, 3.0)
    >>> v = bar_view(s, 0.5)
    >>> v.mid, v.best_bid, v.best_ask, v.spread_bp, v.vwap
    (10.0, 9.75, 10.25, 500.0, 10.2)
    """
    one = {
        "close": np.array([s.close]),
        "low": np.array([s.low]),
        "high": np.array([s.high]),
        "session": np.array([s.session]),
    }
    m = {k: float(v[0]) for k, v in market_view(one, tick).items()}
    return BarView(
        s.ts_ns,
        s.session,
        s.ready,
        bool(m["book_ok"]),
        s.z,
        m["mid"],
        m["spread_bp"],
        s.realised_vol_bp,
        m["microprice"],
        s.vwap,
        m["best_bid"],
        m["best_ask"],
    )


class BarPolicyStrategy(PolicyHMMStrategy):
    """:class:`PolicyHMMStrategy` on Binance 1m klines (``BinanceBar``); samples before
    ``trade_from_ns`` only warm the features up (no inference, no decision)."""

    def __init__(
        self,
        config: PolicyHMMStrategyConfig,
        model: Any,
        schema: BarFeatureSchema,
        trade_from_ns: int | None = None,
    ) -> None:
        if not isinstance(schema, BarFeatureSchema):
            raise SchemaMismatchError(
                f"schema: the model expects {schema.version}, not {FEATURES_BARS_VERSION}: "
                "a bar backtest needs a model trained on bar features",
                field="schema",
            )
        # the parent's book feed is never fed here: it gets a FEATURES_V1 schema to build it
        super().__init__(config, model=model, schema=FeatureSchema(market=schema.market))
        self.schema = schema
        self.feed = NautilusBarFeed(schema, self._on_bar_sample, self._on_reject)
        self.trade_from_ns = trade_from_ns
        self._tick = 0.0

    def _subscribe(self) -> None:
        """1m bars instead of the book (and the tick :func:`bar_view` prices with)."""
        self._tick = float(self.instrument.price_increment)
        self.subscribe_bars(bar_type_for(self.instrument))

    def on_bar(self, bar: Bar) -> None:
        self.feed.on_bar(bar)

    def _book_now(self, s: Any) -> Any:
        return s  # a bar has no book between closes: the answer meets the close it was asked on

    def _on_reject(self, err: Exception) -> None:
        self.log.warning(f"bar rejected: {err}")

    def _on_bar_sample(self, s: BarSample) -> None:
        if self.trade_from_ns is not None and s.ts_ns < self.trade_from_ns:
            return
        self._on_sample(bar_view(s, self._tick))


def _bar_engine(instrument: Any, market: str, venue: VenueOptions, logging: Any) -> Any:
    """:func:`node.engine.binance_engine` on an ``L1_MBP`` venue (bar execution). A bar has no
    queue position to model: a resting limit fills only when a later bar trades THROUGH its price
    (``prob_fill_on_limit=0``: a bar that only touches it may have left it in the queue), the
    trade simulator's rule; ``venue.fill_model`` is for books. No latency model: a
    venue's milliseconds are far below a bar, and with one Nautilus would hold an order sent at
    a close until after the next bar had traded (it could never fill on the bar after it)."""
    from nautilus_trader.backtest.models import FillModel
    from nautilus_trader.model.enums import BookType

    from node.engine import binance_engine

    return binance_engine(
        instrument,
        market,
        trader_id="BARBACKTEST-001",
        starting_quote=venue.starting_quote,
        starting_base=venue.starting_base,
        logging=logging,
        book_type=BookType.L1_MBP,
        fill_model=FillModel(prob_fill_on_limit=0.0, random_seed=venue.seed),
    )


def _in_sample(metadata: dict[str, Any], sds: list[Any], traded_ts: np.ndarray) -> list[str]:
    """Backtested days with a traded sample the model was fitted on: by time when the bundle
    records its last training sample (``train_end_ns``), else by symbol-day."""
    end = metadata.get("train_end_ns")
    if end is None:
        return in_sample_days(metadata, sds)
    days = {str(d) for d in run_dir.utc_day(traded_ts[traded_ts <= int(end)])}
    return [str(sd) for sd in sds if sd.day.isoformat() in days]


def run_bar_backtest(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None,
    model_ref: str,
    registry: Registry,
    out_dir: str | Path,
    config: PolicyHMMStrategyConfig | None = None,
    venue: VenueOptions | None = None,
    *,
    trade_from_ns: int | None = None,
) -> dict[str, Any]:
    """Backtest :class:`BarPolicyStrategy` on ``symbol``'s 1m klines of ``days`` (all if
    ``None``) with ``registry``'s ``model_ref`` in process; returns the summary also written to
    ``out_dir/summary.json`` (the RUN_DIR contract of :func:`node.backtest.run_backtest`)."""
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.identifiers import Venue

    from training.features.bars.offline import bar_days
    from training.features.bars.offline import load_bars

    wall0 = time.perf_counter()
    venue = venue or VenueOptions()
    out = Path(out_dir)
    sds = bar_days(catalog, symbol, days)
    instrument = catalog.instrument(sds[0].instrument_id)
    market = "perp" if sds[0].symbol.endswith("-PERP") else "spot"
    version = registry.resolve(model_ref)
    model = InProcessModelClient(version, registry)
    bundle = model.model.bundle
    cfg = msgspec.structs.replace(
        config or PolicyHMMStrategyConfig(instrument_id=sds[0].instrument_id),
        instrument_id=sds[0].instrument_id,
        market=market,
        state_dir=str(out),
        model_ref=model_ref,
    )
    fill: dict[str, Any] = {}
    if cfg.hold_s is None:
        fill["hold_s"] = label_horizon_s(bundle.metadata) or cfg.default_hold_s
    if cfg.modelled_latency_ms is None:
        fill["modelled_latency_ms"] = IN_PROCESS_LATENCY_MS
    cfg = msgspec.structs.replace(cfg, **fill)
    strategy = BarPolicyStrategy(cfg, model, model.schema, trade_from_ns)
    # what the bar venue really does (see _bar_engine), not the book venue's options
    venue_used = {**dataclasses.asdict(venue), "fill_model": "through", "latency_ms": 0.0}
    out.mkdir(parents=True, exist_ok=True)
    logging = LoggingConfig(bypass_logging=not cfg.log_decisions, log_level="INFO")
    engine = _bar_engine(instrument, market, venue, logging)
    bars = load_bars(catalog, sds)
    engine.add_data(bars)
    engine.add_strategy(strategy)
    load_s = time.perf_counter() - wall0
    try:
        run_past_last_event(engine, bars[-1].ts_init if bars else 0, cfg.latency_budget_ms)
        run_s = time.perf_counter() - wall0 - load_s
        fills = engine.trader.generate_fills_report()
        positions = engine.trader.generate_positions_report()
        account = engine.trader.generate_account_report(Venue(instrument.id.venue.value))
    finally:
        engine.dispose()
        model.close()
    timeline = pa.Table.from_pylist(strategy.timeline, schema=run_dir.SAMPLE_SCHEMA)
    costs = backtest_costs(catalog, instrument, sds)
    pnl, close = pnl_curve(strategy, venue.starting_quote, costs, charge_funding=True)
    timeline = timeline.append_column(
        run_dir.TIMELINE_SCHEMA.field("pnl"), pa.array(pnl, pa.float64())
    )
    for name, df in (
        (run_dir.FILLS, fills),
        (run_dir.POSITIONS, positions),
        (run_dir.ACCOUNT, account),
    ):
        run_dir.write_report(out, name, df)
    run_dir.write_table(out, run_dir.TIMELINE, timeline)
    for name, rows in (
        (run_dir.ENTRIES, strategy.entries),
        (run_dir.BLOCKS, strategy.blocks),
        (run_dir.EXITS, strategy.exits),
    ):
        run_dir.write_rows(out, name, rows)
    counts = strategy.guards.count_dict()
    run_dir.write_json(out, run_dir.GUARDRAILS, counts)
    traded_days = sorted({str(d) for d in timeline.column("day").to_pylist()})
    run_dir.write_json(out, run_dir.ADAPTATION, adaptation_report(bundle, timeline, traded_days))
    facts = run_dir.instrument_facts(instrument, market)
    run_dir.write_json(
        out,
        run_dir.CONFIG,
        {
            "strategy": msgspec.to_builtins(cfg),
            "venue": venue_used,
            "instrument": facts,
            "model": {
                "ref": model_ref,
                "version": version,
                "serve_url": None,
                "client": type(model).__name__,
                "shadow": [],
            },
            "bars": {
                "interval": "1m",
                "trade_from_ns": trade_from_ns,
                "bars": strategy.feed.bars,
            },
        },
    )
    ts = timeline.column("ts").to_numpy()
    in_sample = _in_sample(bundle.metadata, sds, ts)
    answered = sorted(strategy.model_versions)
    summary: dict[str, Any] = {
        **summarise(pnl, fills, ts, instrument.quote_currency.code),
        **close,
        "feed": f"1m bars ({FEATURES_BARS_VERSION})",
        "in_sample": bool(in_sample),
        "in_sample_days": in_sample,
        "trade_from_ns": trade_from_ns,
        "costs": {**costs.to_dict(), "round_trip_bps_passive": costs.round_trip_bps()},
        "model_test": bundle.metadata.get("test"),
        "symbol": str(instrument.id),
        "days": traded_days,
        "symbol_days": [str(sd) for sd in sds if sd.day.isoformat() in traded_days],
        "model_ref": model_ref,
        "model_version": answered[0] if len(answered) == 1 else version,
        "model_versions_answered": answered,
        "serve_url": None,
        "samples": timeline.num_rows,
        **strategy_figures(strategy, strategy.feed.bars),
        "bars_rejected": strategy.feed.rejected,
        "guardrails": counts,
        "trading_enabled": cfg.trading_enabled,
        "load_s": load_s,
        "run_s": run_s,
        "wall_s": time.perf_counter() - wall0,
        "events_per_s": strategy.feed.bars / run_s if run_s > 0 else None,
        "venue": venue_used,
    }
    summary = finite_or_none(summary)
    run_dir.write_json(out, run_dir.SUMMARY, summary)
    return summary
