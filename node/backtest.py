"""``nhmm backtest``: the exact strategy over catalog symbol-days in a Nautilus ``BacktestEngine``.

Binance venue with an L2_MBP book, the instrument's maker/taker fees, a slippage fill model and a
latency model. ``out_dir`` (RUN_DIR) receives fills/positions/account reports, the state
timeline, guardrail counts, entry and block feature vectors, and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from node.config import PolicyHMMStrategyConfig
from node.inference import InferenceClient, InProcessModel
from training.data.catalog import MarketCatalog
from training.registry import Registry

__all__ = ["VenueOptions", "backtest_command", "run_backtest", "summarise"]


@dataclass(frozen=True)
class VenueOptions:
    """Simulated venue: fill model, latency, starting balances (quote, and base for spot)."""

    prob_fill_on_limit: float = 1.0
    prob_slippage: float = 0.1
    latency_ms: float = 5.0
    starting_quote: float = 100_000.0
    starting_base: float = 1.0
    seed: int = 42


def _report_table(df: pd.DataFrame) -> pa.Table:
    """A Nautilus report as a Parquet-safe table (mixed object columns become strings)."""
    df = df.reset_index() if df.index.name is not None else df
    if df.empty:
        return pa.table({c: pa.array([], pa.string()) for c in df.columns} or {"empty": []})
    return pa.Table.from_pandas(df.astype(str), preserve_index=False)


def summarise(pnl: np.ndarray, fills: pd.DataFrame, sample_interval_s: float) -> dict[str, float]:
    """Strategy figures from the per-sample PnL curve (quote, after fees, starting inventory's
    price drift removed) and the fills: net PnL, Sharpe of 1-minute PnL changes (annualised),
    max drawdown, trades, turnover, fees. Empty inputs give zeros, never NaN.

    >>> s = summarise(np.array([0.0, 2.0, 1.0, 3.0]), pd.DataFrame(), 60.0)
    >>> s["net_pnl"], s["max_drawdown"], s["trades"]
    (3.0, 1.0, 0.0)
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    if not np.isfinite(pnl).all():
        raise ValueError("pnl: non-finite value in the PnL curve")
    net = float(pnl[-1]) if len(pnl) else 0.0
    step = max(1, round(60.0 / sample_interval_s))
    rets = np.diff(pnl[::step])
    sharpe = 0.0
    if len(rets) > 1 and float(rets.std()) > 0.0:
        sharpe = float(rets.mean() / rets.std() * math.sqrt(365 * 24 * 60))
    max_dd = float((np.maximum.accumulate(pnl) - pnl).max()) if len(pnl) else 0.0
    turnover = fees = 0.0
    if not fills.empty:
        qty = pd.to_numeric(fills["last_qty"]).to_numpy(dtype=float)
        px = pd.to_numeric(fills["last_px"]).to_numpy(dtype=float)
        turnover = float((qty * px).sum())
        fees = float(sum(float(str(c).split()[0]) for c in fills["commission"]))
    return {
        "net_pnl": net,
        "sharpe": sharpe,
        "max_drawdown": max_dd,
        "trades": float(len(fills)),
        "turnover": turnover,
        "fees": fees,
    }


def run_backtest(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None,
    model_ref: str,
    registry: Registry | None,
    out_dir: str | Path,
    config: PolicyHMMStrategyConfig | None = None,
    venue: VenueOptions | None = None,
    model: InferenceClient | None = None,
) -> dict[str, Any]:
    """Backtest ``PolicyHMMStrategy`` on ``symbol``'s ``days`` (all if ``None``); returns the
    summary also written to ``out_dir/summary.json``.

    The model is ``registry.load(model_ref)`` run in process unless ``model`` is given.
    ``config.instrument_id`` and ``state_dir`` are filled from the catalog and ``out_dir``.
    """
    from nautilus_trader.backtest.models import FillModel, LatencyModel
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.identifiers import Venue

    from node.engine import binance_engine, symbol_day_data
    from node.strategy import PolicyHMMStrategy

    wall0 = time.perf_counter()
    venue = venue or VenueOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sds = catalog.symbol_days(symbol)
    if days is not None:
        wanted = set(days)
        sds = [sd for sd in sds if sd.day in wanted]
        missing = sorted(wanted - {sd.day for sd in sds})
        if missing:
            raise KeyError(f"days: {[d.isoformat() for d in missing]} not in catalog for {symbol}")
    if not sds:
        raise KeyError(f"symbol: no days of {symbol!r} in {catalog.root}")
    instrument = catalog.instrument(sds[0].instrument_id)
    if model is None:
        if registry is None:
            raise ValueError("registry: required when no model is given")
        model = InProcessModel(registry.load(model_ref), registry.resolve(model_ref))
    market = "perp" if sds[0].symbol.endswith("-PERP") else "spot"
    base_cfg = config or PolicyHMMStrategyConfig(instrument_id=sds[0].instrument_id)
    cfg = msgspec.structs.replace(
        base_cfg,
        instrument_id=sds[0].instrument_id,
        market=market,
        state_dir=str(out),
        model_ref=model_ref,
    )
    engine = binance_engine(
        instrument,
        market,
        trader_id="BACKTEST-001",
        starting_quote=venue.starting_quote,
        starting_base=venue.starting_base,
        logging=LoggingConfig(bypass_logging=not cfg.log_decisions, log_level="INFO"),
        fill_model=FillModel(
            prob_fill_on_limit=venue.prob_fill_on_limit,
            prob_slippage=venue.prob_slippage,
            random_seed=venue.seed,
        ),
        latency_model=LatencyModel(base_latency_nanos=int(venue.latency_ms * 1e6)),
    )
    for sd in sds:
        for items in symbol_day_data(catalog, sd):
            engine.add_data(items)
    strategy = PolicyHMMStrategy(cfg, model=model)
    engine.add_strategy(strategy)
    load_s = time.perf_counter() - wall0
    try:
        engine.run()
        run_s = time.perf_counter() - wall0 - load_s
        fills = engine.trader.generate_fills_report()
        positions = engine.trader.generate_positions_report()
        account = engine.trader.generate_account_report(Venue(instrument.id.venue.value))
    finally:
        engine.dispose()
    timeline = pa.Table.from_pylist(strategy.timeline, schema=_TIMELINE_SCHEMA)
    equity = timeline.column("equity").to_numpy()
    inventory = venue.starting_base if market == "spot" else 0.0
    pnl = equity - venue.starting_quote - inventory * timeline.column("mid").to_numpy()
    timeline = timeline.append_column("pnl", pa.array(pnl, pa.float64()))
    for name, df in (("fills", fills), ("positions", positions), ("account", account)):
        pq.write_table(_report_table(df), out / f"{name}.parquet")
    pq.write_table(timeline, out / "timeline.parquet")
    pq.write_table(
        pa.Table.from_pylist(strategy.entries, schema=_ENTRY_SCHEMA), out / "entries.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist(strategy.blocks, schema=_BLOCK_SCHEMA), out / "blocks.parquet"
    )
    counts = strategy.guards.count_dict()
    (out / "guardrails.json").write_text(json.dumps(counts, indent=2, sort_keys=True))
    schema = strategy.feed.engine.schema
    summary: dict[str, Any] = {
        **summarise(pnl, fills, schema.sample_interval_s),
        "symbol_days": [str(sd) for sd in sds],
        "model_ref": model_ref,
        "model_version": getattr(model, "model_version", ""),
        "samples": timeline.num_rows,
        "decisions": strategy.decisions,
        "entries": len(strategy.entries),
        "orders_submitted": strategy.orders_submitted,
        "events": strategy.feed.events,
        "guardrails": counts,
        "trading_enabled": cfg.trading_enabled,
        "load_s": load_s,
        "run_s": run_s,
        "wall_s": time.perf_counter() - wall0,
        "venue": dataclasses.asdict(venue),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


_TIMELINE_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("state", pa.int32()),
        ("posterior", pa.list_(pa.float64())),
        ("confidence", pa.float64()),
        ("action", pa.string()),
        ("score", pa.float64()),
        ("verdict", pa.string()),
        ("latency_ms", pa.float64()),
        ("equity", pa.float64()),
        ("position", pa.float64()),
        ("mid", pa.float64()),
    ]
)
_ENTRY_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.float64()),
        ("submitted", pa.bool_()),
        ("features", pa.list_(pa.float64())),
    ]
)
_BLOCK_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("reason", pa.string()),
        ("side", pa.string()),
        ("features", pa.list_(pa.float64())),
    ]
)


@click.command("backtest")
@click.option("--catalog", "catalog_root", required=True, type=click.Path(exists=True))
@click.option("--symbol", required=True, help="BTCUSDT, BTCUSDT-PERP or an instrument id.")
@click.option("--days", multiple=True, help="YYYY-MM-DD (repeatable); default: every day.")
@click.option("--model", "model_ref", default="live", show_default=True)
@click.option("--registry", "registry_root", default=None, help="Overrides NHMM_REGISTRY.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="RUN_DIR.")
@click.option("--min-conf", type=float, default=0.6, show_default=True)
@click.option("--trading/--no-trading", default=True, show_default=True)
@click.option("--prob-slippage", type=float, default=0.1, show_default=True)
@click.option("--latency-ms", type=float, default=5.0, show_default=True)
def backtest_command(
    catalog_root: str,
    symbol: str,
    days: tuple[str, ...],
    model_ref: str,
    registry_root: str | None,
    out_dir: str,
    min_conf: float,
    trading: bool,
    prob_slippage: float,
    latency_ms: float,
) -> None:
    """Backtest the strategy on catalog symbol-days; writes reports and summary.json to --out."""
    try:
        day_list = [datetime.date.fromisoformat(d) for d in days] or None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--days") from exc
    cfg = PolicyHMMStrategyConfig(instrument_id=symbol, min_conf=min_conf, trading_enabled=trading)
    summary = run_backtest(
        MarketCatalog(catalog_root),
        symbol,
        day_list,
        model_ref,
        Registry(registry_root),
        out_dir,
        cfg,
        VenueOptions(prob_slippage=prob_slippage, latency_ms=latency_ms),
    )
    for key in ("net_pnl", "sharpe", "max_drawdown", "trades", "turnover", "events", "wall_s"):
        click.echo(f"{key:>14}: {summary[key]:.6g}")
    click.echo(f"{'guardrails':>14}: {summary['guardrails']}")
