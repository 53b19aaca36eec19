"""The exact strategy over catalog symbol-days in a Nautilus ``BacktestEngine`` (``nhmm backtest``).

Binance venue with an L2_MBP book, the instrument's maker/taker fees, a slippage fill model and a
latency model. The model answers in process (default) or through a Serve URL (``--serve``);
shadow versions are asked beside it and never traded. The run is written to a RUN_DIR, whose
files and schemas :mod:`node.run_dir` owns; the figures come from :mod:`node.summary`.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from node import run_dir
from node.config import PolicyHMMStrategyConfig
from node.config import label_horizon_s
from node.execution import EXIT_REASONS
from node.summary import adaptation_report
from node.summary import finite_or_none
from node.summary import summarise
from serving.client import HttpModelClient
from serving.client import InProcessModelClient
from serving.client import ModelClient
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog
from training.errors import SchemaMismatchError

__all__ = ["IN_PROCESS_LATENCY_MS", "VenueOptions", "run_backtest", "venue_engine"]

#: What the LATENCY guard sees for in-process inference in a backtest (ms): the unloaded cost of
#: one call in ``bench_inference`` (filter step p99 ~0.07 ms, policy row p99 ~0.09 ms, total p50
#: ~0.05 ms); the measured wall time is still recorded in the timeline.
IN_PROCESS_LATENCY_MS = 0.1


@dataclass(frozen=True)
class VenueOptions:
    """Simulated venue: fill model, latency, starting balances (quote, and base for spot)."""

    prob_fill_on_limit: float = 1.0
    prob_slippage: float = 0.1
    latency_ms: float = 5.0
    starting_quote: float = 100_000.0
    starting_base: float = 1.0
    seed: int = 42


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


def _live_client(
    model: ModelClient | None,
    model_ref: str,
    registry: Registry | None,
    client_for: Callable[[str], ModelClient],
    serve_url: str | None,
) -> tuple[ModelClient, InProcessModelClient, str]:
    """``(client the strategy asks, in-process twin holding the bundle, pinned version)``."""
    if model is None:
        assert registry is not None
        version = registry.resolve(model_ref)
        local = InProcessModelClient(version, registry)
        return (local if serve_url is None else client_for(version)), local, version
    if isinstance(model, InProcessModelClient):
        return model, model, model.version
    if registry is None:
        raise ValueError("registry: required to load the schema and bundle of a remote model")
    version = registry.resolve(model_ref)
    return model, InProcessModelClient(version, registry), version


def _shadow_clients(
    shadow: Sequence[str],
    registry: Registry | None,
    live: InProcessModelClient,
    client_for: Callable[[str], ModelClient],
    serve_url: str | None,
) -> tuple[list[str], list[tuple[str, ModelClient]]]:
    """The shadow refs pinned to versions (deduplicated) and a client for each; a shadow on
    another feature schema than live is refused (it must see the same features)."""
    if not shadow:
        return [], []
    assert registry is not None
    versions = list(dict.fromkeys(registry.resolve(r) for r in shadow))
    clients: list[tuple[str, ModelClient]] = []
    for v in versions:
        twin = InProcessModelClient(v, registry)
        if twin.schema != live.schema:
            raise SchemaMismatchError(
                f"shadow: {v} expects another feature schema than {live.version} "
                f"({twin.schema} != {live.schema}); a shadow must see the same features as live",
                field="shadow",
            )
        clients.append((v, twin if serve_url is None else client_for(v)))
    return versions, clients


def venue_engine(
    instrument: Any,
    market: str,
    venue: VenueOptions,
    *,
    trader_id: str = "BACKTEST-001",
    logging: Any = None,
) -> Any:
    """The Binance ``BacktestEngine`` (:func:`node.engine.binance_engine`) with ``venue``'s
    balances, fill model and latency model; ``logging`` is a Nautilus ``LoggingConfig``."""
    from nautilus_trader.backtest.models import FillModel
    from nautilus_trader.backtest.models import LatencyModel

    from node.engine import binance_engine

    return binance_engine(
        instrument,
        market,
        trader_id=trader_id,
        starting_quote=venue.starting_quote,
        starting_base=venue.starting_base,
        logging=logging,
        fill_model=FillModel(
            prob_fill_on_limit=venue.prob_fill_on_limit,
            prob_slippage=venue.prob_slippage,
            random_seed=venue.seed,
        ),
        latency_model=LatencyModel(base_latency_nanos=int(venue.latency_ms * 1e6)),
    )


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
    A symbol or day the catalog lacks raises :class:`~training.errors.NotFoundError`.
    """
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.identifiers import Venue

    from node.engine import symbol_day_data
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

    model, local, version = _live_client(model, model_ref, registry, client_for, serve_url)
    bundle, schema = local.model.bundle, local.schema
    fill: dict[str, Any] = {}
    if cfg.hold_s is None:
        fill["hold_s"] = label_horizon_s(bundle.metadata) or cfg.default_hold_s
    if cfg.modelled_latency_ms is None and isinstance(model, InProcessModelClient):
        fill["modelled_latency_ms"] = IN_PROCESS_LATENCY_MS
    cfg = msgspec.structs.replace(cfg, **fill)
    shadow_versions, shadow_clients = _shadow_clients(
        shadow, registry, local, client_for, serve_url
    )
    shadow_policy = None
    if shadow_clients:
        shadow_policy = ShadowPolicy(
            shadow_clients,
            schema.version,
            quantity=cfg.max_position,
            fee_rate=float(instrument.maker_fee),
        )
    out.mkdir(parents=True, exist_ok=True)
    logging = LoggingConfig(bypass_logging=not cfg.log_decisions, log_level="INFO")
    engine = venue_engine(instrument, market, venue, logging=logging)
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
    timeline = pa.Table.from_pylist(strategy.timeline, schema=run_dir.SAMPLE_SCHEMA)
    pnl = timeline.column("equity").to_numpy() - venue.starting_quote  # inventory drift is out
    timeline = timeline.append_column(
        run_dir.TIMELINE_SCHEMA.field("pnl"), pa.array(pnl, pa.float64())
    )
    day_strs = [sd.day.isoformat() for sd in sds]
    adaptation = adaptation_report(bundle, timeline, day_strs)
    for name, df in ((run_dir.FILLS, fills), (run_dir.POSITIONS, positions),
                     (run_dir.ACCOUNT, account)):  # fmt: skip
        run_dir.write_report(out, name, df)
    run_dir.write_table(out, run_dir.TIMELINE, timeline)
    run_dir.write_rows(out, run_dir.ENTRIES, strategy.entries)
    run_dir.write_rows(out, run_dir.BLOCKS, strategy.blocks)
    run_dir.write_rows(out, run_dir.EXITS, strategy.exits)
    if shadow_policy is not None:
        run_dir.write_table(out, run_dir.SHADOW, shadow_policy.table())
    counts = strategy.guards.count_dict()
    run_dir.write_json(out, run_dir.GUARDRAILS, counts)
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
    run_dir.write_json(out, run_dir.CONFIG, run_config)
    run_dir.write_json(out, run_dir.ADAPTATION, adaptation)
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
    summary = finite_or_none(summary)
    run_dir.write_json(out, run_dir.SUMMARY, summary)
    return summary
