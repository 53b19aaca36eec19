"""``nhmm backtest``: the exact strategy over catalog symbol-days in a Nautilus ``BacktestEngine``.

Binance venue with an L2_MBP book, the instrument's maker/taker fees, a slippage fill model and a
latency model. The model answers in process (default) or through a Serve URL (``--serve``);
``--shadow`` versions are asked beside it and never traded. RUN_DIR receives:

- ``fills/positions/account.parquet``: Nautilus reports;
- ``timeline.parquet``: one row per sample (ts, day, state, posterior, confidence, action, score,
  verdict, status, latency_ms, loglik, drift, adapting, features, equity, position, mid, pnl);
  ``equity`` leaves out the starting base inventory's price drift (what DD watches), ``pnl`` is
  ``equity`` minus the starting quote balance;
- ``entries.parquet`` / ``blocks.parquet``: feature vectors at entries and at every block;
- ``exits.parquet``: every exit quote (ts, reason, side, price, quantity, requote);
- ``shadow.parquet``: every shadow decision (with ``--shadow``);
- ``guardrails.json``: block counts by reason;
- ``config.json``: strategy config, venue options, instrument facts, model refs;
- ``adaptation.json``: per day, the drift monitor's report over the day's samples and a
  ``partial_fit`` of the day's features (exercised, never registered);
- ``summary.json``: net PnL after fees, Sharpe, drawdown, trades, turnover, speed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from node.config import PolicyHMMStrategyConfig, label_horizon_s
from node.execution import EXIT_REASONS, VWAP_MODES
from serving.client import HttpModelClient, InProcessModelClient, ModelClient
from training.artifacts.registry import Registry
from training.cli.options import days_option
from training.data.catalog import MarketCatalog

if TYPE_CHECKING:
    from training.artifacts.bundle import ModelBundle

__all__ = [
    "IN_PROCESS_LATENCY_MS",
    "MIN_SHARPE_RETURNS",
    "VenueOptions",
    "adaptation_report",
    "backtest_command",
    "run_backtest",
    "summarise",
]

#: What the LATENCY guard sees for in-process inference in a backtest (ms): the unloaded cost of
#: one call in ``bench_inference`` (filter step p99 ~0.07 ms, policy row p99 ~0.09 ms, total p50
#: ~0.05 ms); the measured wall time is still recorded in the timeline.
IN_PROCESS_LATENCY_MS = 0.1
#: Fewer 1-minute PnL changes than this and ``sharpe`` is ``null``: too few to mean anything.
MIN_SHARPE_RETURNS = 30
SHARPE_BASIS = "1-minute PnL changes, mean/std annualised by sqrt(525600)"
#: PnL variation below this (quote units) is float rounding of the equity, not a return stream.
_PNL_NOISE = 1e-8


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


def summarise(
    pnl: np.ndarray, fills: pd.DataFrame, sample_interval_s: float
) -> dict[str, float | int | str | None]:
    """Strategy figures from the per-sample PnL curve (quote, after fees, starting inventory's
    price drift removed) and the fills: net PnL, Sharpe of 1-minute PnL changes (annualised;
    ``None`` below :data:`MIN_SHARPE_RETURNS` changes or with no real variation), max drawdown,
    trades, turnover, fees. Empty inputs give zeros, never NaN.

    >>> s = summarise(np.array([0.0, 2.0, 1.0, 3.0]), pd.DataFrame(), 60.0)
    >>> s["net_pnl"], s["max_drawdown"], s["trades"], s["sharpe"], s["n_returns"]
    (3.0, 1.0, 0.0, None, 3)
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    if not np.isfinite(pnl).all():
        raise ValueError("pnl: non-finite value in the PnL curve")
    net = float(pnl[-1]) if len(pnl) else 0.0
    step = max(1, round(60.0 / sample_interval_s))
    rets = np.diff(pnl[::step])
    sharpe = None
    if len(rets) >= MIN_SHARPE_RETURNS and float(rets.std()) > _PNL_NOISE:
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
        "sharpe_basis": SHARPE_BASIS,
        "n_returns": len(rets),
        "max_drawdown": max_dd,
        "trades": float(len(fills)),
        "turnover": turnover,
        "fees": fees,
    }


def _finite_or_none(v: Any) -> Any:
    """JSON has no NaN: non-finite floats become ``None`` (recursively)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_or_none(x) for x in v]
    return v


def adaptation_report(bundle: ModelBundle, timeline: pa.Table, days: list[str]) -> dict[str, Any]:
    """Per day of ``days``: a fresh ``DriftMonitor`` fed that day's answered samples (features,
    log-likelihood) and one guarded ``partial_fit`` of the bundle's HMM on them (never
    registered). A failure is recorded in ``partial_fit.error``, never raised."""
    from serving.drift import DriftMonitor
    from training.models.online import partial_fit

    params = bundle.hmm_params()
    answered = timeline.filter(pc.greater_equal(timeline["state"], 0))
    col_day = answered["day"].to_pylist()
    feats = answered["features"].to_pylist()
    logliks = answered["loglik"].to_pylist()
    out = []
    for day in days:
        rows = [i for i, d in enumerate(col_day) if d == day]
        monitor = DriftMonitor(bundle)
        for i in rows:
            monitor.update(np.asarray(feats[i], dtype=np.float64), float(logliks[i]))
        fit: dict[str, Any] = dict.fromkeys(
            ("accepted", "reason", "heldout_ll_before", "heldout_ll_after"), None
        )
        fit.update(n_samples=len(rows), error=None)
        try:
            X = np.asarray([feats[i] for i in rows], dtype=np.float64).reshape(len(rows), -1)
            result, _ = partial_fit(params, X)
            fit.update(
                accepted=bool(result.accepted),
                reason=result.reason,
                n_samples=result.n_samples,
                heldout_ll_before=result.heldout_ll_before,
                heldout_ll_after=result.heldout_ll_after,
                duration_s=result.duration_s,
            )
        except Exception as exc:  # recorded for acceptance, never fatal to the backtest
            fit["error"] = f"{type(exc).__name__}: {exc}"
        drift = dataclasses.asdict(monitor.report())
        out.append(_finite_or_none({"day": day, "drift": drift, "partial_fit": fit}))
    return {"days": out}


def _instrument_facts(instrument: Any, market: str) -> dict[str, Any]:
    def num(v: Any) -> float | None:
        return None if v is None else float(v)

    return {
        "id": str(instrument.id),
        "market": market,
        "min_notional": num(instrument.min_notional),
        "min_quantity": num(instrument.min_quantity),
        "size_increment": float(instrument.size_increment),
        "price_increment": float(instrument.price_increment),
        "maker_fee": float(instrument.maker_fee),
        "taker_fee": float(instrument.taker_fee),
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
    model: ModelClient | None = None,
    *,
    serve_url: str | None = None,
    budget_ms: float | None = None,
    shadow: Sequence[str] = (),
) -> dict[str, Any]:
    """Backtest ``PolicyHMMStrategy`` on ``symbol``'s ``days`` (all if ``None``); returns the
    summary also written to ``out_dir/summary.json``.

    The model is ``registry``'s ``model_ref``, pinned to the version it resolves to, asked in
    process, or over HTTP at ``serve_url``; ``model`` overrides the client (an
    :class:`InProcessModelClient` needs no registry). ``budget_ms`` sets the LATENCY budget
    (config and HTTP client). ``shadow`` refs run beside it in the same way, never traded.
    ``config.instrument_id`` and ``state_dir`` are filled from the catalog and ``out_dir``;
    ``hold_s`` (unset) from the bundle's label horizon; with the in-process client an unset
    ``modelled_latency_ms`` becomes :data:`IN_PROCESS_LATENCY_MS`, so the LATENCY guard (and so
    every decision) does not depend on machine load; a Serve run keeps the real latency.
    """
    from nautilus_trader.backtest.models import FillModel, LatencyModel
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.identifiers import Venue

    from node.engine import binance_engine, symbol_day_data
    from node.ensemble_policy import ShadowPolicy
    from node.strategy import PolicyHMMStrategy

    wall0 = time.perf_counter()
    venue = venue or VenueOptions()
    out = Path(out_dir)
    sds = catalog.select(symbol, days)
    if (shadow or model is None) and registry is None:
        raise ValueError("registry: required unless an in-process model is given (no shadow)")
    instrument = catalog.instrument(sds[0].instrument_id)
    market = "perp" if sds[0].symbol.endswith("-PERP") else "spot"
    base_cfg = config or PolicyHMMStrategyConfig(instrument_id=sds[0].instrument_id)
    changes: dict[str, Any] = {}
    if budget_ms is not None:
        changes["latency_budget_ms"] = float(budget_ms)
    cfg = msgspec.structs.replace(
        base_cfg,
        instrument_id=sds[0].instrument_id,
        market=market,
        state_dir=str(out),
        model_ref=model_ref,
        **changes,
    )

    def client_for(version: str) -> ModelClient:
        if serve_url is not None:
            return HttpModelClient(serve_url, budget_ms=cfg.latency_budget_ms, model=version)
        return InProcessModelClient(version, registry)

    if model is None:
        assert registry is not None
        version = registry.resolve(model_ref)
        local = InProcessModelClient(version, registry)
        model = local if serve_url is None else client_for(version)
    elif isinstance(model, InProcessModelClient):
        local, version = model, model.version
    else:
        if registry is None:
            raise ValueError("registry: required to load the schema and bundle of a remote model")
        version = registry.resolve(model_ref)
        local = InProcessModelClient(version, registry)
    bundle, schema = local.model.bundle, local.schema
    fill: dict[str, Any] = {}
    if cfg.hold_s is None:
        fill["hold_s"] = label_horizon_s(bundle.metadata) or cfg.default_hold_s
    if cfg.modelled_latency_ms is None and isinstance(model, InProcessModelClient):
        fill["modelled_latency_ms"] = IN_PROCESS_LATENCY_MS
    cfg = msgspec.structs.replace(cfg, **fill)
    shadow_versions = list(dict.fromkeys(registry.resolve(r) for r in shadow)) if shadow else []
    shadow_clients: list[tuple[str, ModelClient]] = []
    for v in shadow_versions:
        twin = InProcessModelClient(v, registry)
        if twin.schema != schema:
            raise ValueError(
                f"shadow: {v} expects another feature schema than {version} "
                f"({twin.schema} != {schema}); a shadow must see the same features as live"
            )
        shadow_clients.append((v, twin if serve_url is None else client_for(v)))
    shadow_policy = None
    if shadow_clients:
        shadow_policy = ShadowPolicy(
            shadow_clients,
            schema.version,
            quantity=cfg.max_position,
            fee_rate=float(instrument.maker_fee),
        )
    out.mkdir(parents=True, exist_ok=True)
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
    strategy = PolicyHMMStrategy(cfg, model=model, schema=schema, shadow=shadow_policy)
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
        for c in [model, *(c for _, c in (shadow_policy.clients if shadow_policy else []))]:
            c.close()
    timeline = pa.Table.from_pylist(strategy.timeline, schema=_TIMELINE_SCHEMA)
    pnl = timeline.column("equity").to_numpy() - venue.starting_quote  # inventory drift is out
    timeline = timeline.append_column("pnl", pa.array(pnl, pa.float64()))
    day_strs = [sd.day.isoformat() for sd in sds]
    adaptation = adaptation_report(bundle, timeline, day_strs)
    for name, df in (("fills", fills), ("positions", positions), ("account", account)):
        pq.write_table(_report_table(df), out / f"{name}.parquet")
    pq.write_table(timeline, out / "timeline.parquet")
    pq.write_table(
        pa.Table.from_pylist(strategy.entries, schema=_ENTRY_SCHEMA), out / "entries.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist(strategy.blocks, schema=_BLOCK_SCHEMA), out / "blocks.parquet"
    )
    pq.write_table(pa.Table.from_pylist(strategy.exits, schema=_EXIT_SCHEMA), out / "exits.parquet")
    if shadow_policy is not None:
        pq.write_table(shadow_policy.table(), out / "shadow.parquet")
    counts = strategy.guards.count_dict()
    (out / "guardrails.json").write_text(json.dumps(counts, indent=2, sort_keys=True))
    run_config = {
        "strategy": msgspec.to_builtins(cfg),
        "venue": dataclasses.asdict(venue),
        "instrument": _instrument_facts(instrument, market),
        "model": {
            "ref": model_ref,
            "version": version,
            "serve_url": serve_url,
            "client": type(model).__name__,
            "shadow": shadow_versions,
        },
    }
    (out / "config.json").write_text(json.dumps(run_config, indent=2, sort_keys=True))
    (out / "adaptation.json").write_text(json.dumps(adaptation, indent=2, sort_keys=True))
    answered = sorted(strategy.model_versions)
    events = strategy.feed.events
    summary: dict[str, Any] = {
        **summarise(pnl, fills, schema.sample_interval_s),
        "symbol": str(instrument.id),
        "days": day_strs,
        "symbol_days": [str(sd) for sd in sds],
        "model_ref": model_ref,
        "model_version": answered[0] if len(answered) == 1 else version,
        "model_versions_answered": answered,
        "serve_url": serve_url,
        "samples": timeline.num_rows,
        "decisions": strategy.decisions,
        "entries": len(strategy.entries),
        "exits": sum(1 for e in strategy.exits if not e["requote"]),
        "exit_reasons": {
            r: sum(1 for e in strategy.exits if e["reason"] == r and not e["requote"])
            for r in EXIT_REASONS
        },
        "hold_s": strategy.hold_s,
        "orders_submitted": strategy.orders_submitted,
        "exit_orders_submitted": strategy.exit_orders_submitted,
        "inference_status": dict(strategy.status_counts),
        "events": events,
        "guardrails": counts,
        "trading_enabled": cfg.trading_enabled,
        "load_s": load_s,
        "run_s": run_s,
        "wall_s": time.perf_counter() - wall0,
        "events_per_s": events / run_s if run_s > 0 else None,
        "venue": dataclasses.asdict(venue),
    }
    if shadow_policy is not None:
        summary["shadow"] = shadow_policy.summary()
    summary = _finite_or_none(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


_TIMELINE_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("day", pa.string()),
        ("state", pa.int32()),
        ("posterior", pa.list_(pa.float64())),
        ("confidence", pa.float64()),
        ("action", pa.string()),
        ("score", pa.float64()),
        ("verdict", pa.string()),
        ("status", pa.string()),
        ("latency_ms", pa.float64()),
        ("loglik", pa.float64()),
        ("drift", pa.float64()),
        ("adapting", pa.bool_()),
        ("features", pa.list_(pa.float64())),
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
_EXIT_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("reason", pa.string()),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.float64()),
        ("requote", pa.bool_()),
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
@days_option
@click.option("--model", "model_ref", default="live", show_default=True)
@click.option("--registry", "registry_root", default=None, help="Overrides NHMM_REGISTRY.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="RUN_DIR.")
@click.option(
    "--serve",
    "serve_url",
    default=None,
    help="Serve URL (http://127.0.0.1:8000); default: in process.",
)
@click.option("--budget-ms", type=float, default=None, help="LATENCY budget in ms [default: 50].")
@click.option("--shadow", multiple=True, help="Model ref run in shadow, never traded (repeatable).")
@click.option("--min-conf", type=float, default=0.6, show_default=True)
@click.option("--trading/--no-trading", default=True, show_default=True)
@click.option("--prob-slippage", type=float, default=0.1, show_default=True)
@click.option("--latency-ms", type=float, default=5.0, show_default=True)
@click.option("--hold-s", type=float, default=None, help="Hold time [default: the label horizon].")
@click.option("--stop-loss-bps", type=float, default=0.0, show_default=True, help="0 = off.")
@click.option("--signal-exit/--no-signal-exit", default=False, show_default=True)
@click.option("--vwap-mode", type=click.Choice(VWAP_MODES), default="trend", show_default=True)
def backtest_command(
    catalog_root: str,
    symbol: str,
    days: tuple[datetime.date, ...],
    model_ref: str,
    registry_root: str | None,
    out_dir: str,
    serve_url: str | None,
    budget_ms: float | None,
    shadow: tuple[str, ...],
    min_conf: float,
    trading: bool,
    prob_slippage: float,
    latency_ms: float,
    hold_s: float | None,
    stop_loss_bps: float,
    signal_exit: bool,
    vwap_mode: str,
) -> None:
    """Backtest the strategy on catalog symbol-days; writes reports and summary.json to --out."""
    day_list = list(days) or None
    if budget_ms is not None and not budget_ms > 0:
        raise click.BadParameter(f"must be > 0, got {budget_ms}", param_hint="--budget-ms")
    try:
        cfg = PolicyHMMStrategyConfig(
            instrument_id=symbol,
            min_conf=min_conf,
            trading_enabled=trading,
            hold_s=hold_s,
            stop_loss_bps=stop_loss_bps,
            signal_exit=signal_exit,
            vwap_mode=vwap_mode,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    summary = run_backtest(
        MarketCatalog(catalog_root),
        symbol,
        day_list,
        model_ref,
        Registry(registry_root),
        out_dir,
        cfg,
        VenueOptions(prob_slippage=prob_slippage, latency_ms=latency_ms),
        serve_url=serve_url,
        budget_ms=budget_ms,
        shadow=shadow,
    )
    for key in ("net_pnl", "sharpe", "max_drawdown", "trades", "turnover", "events", "wall_s"):
        value = summary[key]
        click.echo(f"{key:>14}: {'n/a' if value is None else format(value, '.6g')}")
    click.echo(f"{'guardrails':>14}: {summary['guardrails']}")
    for v, info in (summary.get("shadow") or {}).get("versions", {}).items():
        click.echo(f"{'shadow':>14}: {v} agreement {info['agreement']} paper {info['paper']}")
