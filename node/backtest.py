"""The exact strategy over catalog symbol-days in a Nautilus ``BacktestEngine`` (``nhmm backtest``).

Binance venue with an L2_MBP book, the instrument's maker/taker fees, the queue-aware fill model
(:mod:`node.fills`: resting orders wait behind the displayed size at their price, takers walk the
book; ``fill_model="touch"`` is Nautilus's optimistic default, kept to compare) and a latency
model. The model answers in process (default) or through a Serve URL (``--serve``);
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
from node.fills import FillOptions
from node.fills import passive_fill_rate
from node.summary import adaptation_report
from node.summary import finite_or_none
from node.summary import pnl_curve
from node.summary import strategy_figures
from node.summary import summarise
from serving.client import HttpModelClient
from serving.client import InProcessModelClient
from serving.client import ModelClient
from training.artifacts.registry import Registry
from training.costs import CostModel
from training.data.catalog import MarketCatalog
from training.errors import SchemaMismatchError

__all__ = [
    "IN_PROCESS_LATENCY_MS",
    "VenueOptions",
    "backtest_costs",
    "in_sample_days",
    "pinned_model",
    "run_backtest",
    "venue_engine",
]


def in_sample_days(metadata: dict[str, Any], symbol_days: Sequence[Any]) -> list[str]:
    """The backtested symbol-days the model was fitted on (``metadata["symbol_days"]``): a
    backtest on any of them is in-sample and says so.

    >>> in_sample_days({"symbol_days": ["X.B/2024-01-01"]}, ["X.B/2024-01-01", "X.B/2024-01-02"])
    ['X.B/2024-01-01']
    """
    trained = {str(s) for s in metadata.get("symbol_days", [])}
    return [str(sd) for sd in symbol_days if str(sd) in trained]


#: What the LATENCY guard sees for in-process inference in a backtest (ms): the unloaded cost of
#: one call in ``bench_inference`` (filter step p99 ~0.07 ms, policy row p99 ~0.09 ms, total p50
#: ~0.05 ms); the measured wall time is still recorded in the timeline.
IN_PROCESS_LATENCY_MS = 0.1


@dataclass(frozen=True)
class VenueOptions:
    """Simulated venue: fill model (:data:`node.fills.FILL_MODELS`: ``queue`` or ``touch``),
    latency, starting balances (quote, and base for spot)."""

    fill_model: str = "queue"
    latency_ms: float = 5.0
    starting_quote: float = 100_000.0
    starting_base: float = 1.0
    seed: int = 42

    def __post_init__(self) -> None:
        FillOptions(self.fill_model, self.seed)  # names the field of a bad model


def backtest_costs(catalog: MarketCatalog, instrument: Any, sds: Sequence[Any]) -> CostModel:
    """What a backtest of ``sds`` prices trades with: the instrument's fees and the funding its
    catalog says was settled over those days (:meth:`CostModel.with_funding`)."""
    return CostModel.for_instrument(instrument).with_funding(catalog.funding_of(sds))


def pinned_model(
    model: ModelClient | None,
    model_ref: str,
    registry: Registry | None,
    client_for: Callable[[str], ModelClient],
    serve_url: str | None,
) -> tuple[ModelClient, InProcessModelClient, str]:
    """``(client the strategy asks, in-process twin holding the bundle, pinned version)``:
    ``model_ref`` resolved once, so the whole run asks one version (backtest and live node)."""
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


def _truth(catalog: MarketCatalog, sds: list[Any], timeline: pa.Table) -> pa.Table | None:
    """The ground-truth regime at each timeline sample when the catalog has labels for every
    backtested day (synthetic markets), else ``None``."""
    import numpy as np

    from training.features.offline import regime_labels

    if not sds or not all(catalog.labels_path(sd).exists() for sd in sds):
        return None
    ts = timeline.column("ts").to_numpy()
    days = np.asarray(timeline.column("day").to_pylist(), dtype=object)
    regime = np.full(len(ts), -1, dtype=np.int32)
    for sd in sds:
        rows = days == sd.day.isoformat()
        if rows.any():
            regime[rows] = regime_labels(catalog, sd, ts[rows])
    return pa.table({"ts": pa.array(ts, pa.int64()), "regime": pa.array(regime, pa.int32())})


def _model_test(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """What the model's own ``test`` block (simulated, out-of-sample) promised, to read beside
    this backtest."""
    test = metadata.get("test")
    if not isinstance(test, dict):
        return None
    keys = ("period", "net_pnl_per_day", "net_pnl_per_day_ci", "round_trips_per_day",
            "gross_edge_bp_per_rt", "cost_bp_per_rt")  # fmt: skip
    return {k: test.get(k) for k in keys}


def venue_engine(
    instrument: Any,
    market: str,
    venue: VenueOptions,
    *,
    trader_id: str = "BACKTEST-001",
    logging: Any = None,
) -> Any:
    """The Binance ``BacktestEngine`` (:func:`node.engine.binance_engine`) with ``venue``'s
    balances, fill model (:func:`node.fills.venue_fill_config`) and latency model; ``logging``
    is a Nautilus ``LoggingConfig``."""
    from nautilus_trader.backtest.models import LatencyModel

    from node.engine import binance_engine
    from node.fills import venue_fill_config

    return binance_engine(
        instrument,
        market,
        trader_id=trader_id,
        starting_quote=venue.starting_quote,
        starting_base=venue.starting_base,
        logging=logging,
        latency_model=LatencyModel(base_latency_nanos=int(venue.latency_ms * 1e6)),
        **venue_fill_config(FillOptions(venue.fill_model, venue.seed)),  # type: ignore[arg-type]
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

    from node.engine import run_past_last_event
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

    model, local, version = pinned_model(model, model_ref, registry, client_for, serve_url)
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
    last_ns = 0
    for sd in sds:
        for items in symbol_day_data(catalog, sd):
            engine.add_data(items)
            last_ns = max(last_ns, items[-1].ts_init)  # each list is in ts_init order
    strategy = PolicyHMMStrategy(cfg, model=model, schema=schema, shadow=shadow_policy)
    engine.add_strategy(strategy)
    load_s = time.perf_counter() - wall0
    try:
        run_past_last_event(engine, last_ns, cfg.latency_budget_ms)
        run_s = time.perf_counter() - wall0 - load_s
        fills = engine.trader.generate_fills_report()
        passive = passive_fill_rate(engine.trader.generate_orders_report())
        positions = engine.trader.generate_positions_report()
        account = engine.trader.generate_account_report(Venue(instrument.id.venue.value))
    finally:
        engine.dispose()
        for c in [model, *(c for _, c in (shadow_policy.clients if shadow_policy else []))]:
            c.close()
    timeline = pa.Table.from_pylist(strategy.timeline, schema=run_dir.SAMPLE_SCHEMA)
    costs = backtest_costs(catalog, instrument, sds)
    pnl, close = pnl_curve(strategy, venue.starting_quote, costs, charge_funding=True)
    timeline = timeline.append_column(
        run_dir.TIMELINE_SCHEMA.field("pnl"), pa.array(pnl, pa.float64())
    )
    day_strs = [sd.day.isoformat() for sd in sds]
    adaptation = adaptation_report(bundle, timeline, day_strs)
    for name, df in ((run_dir.FILLS, fills), (run_dir.POSITIONS, positions),
                     (run_dir.ACCOUNT, account)):  # fmt: skip
        run_dir.write_report(out, name, df)
    run_dir.write_table(out, run_dir.TIMELINE, timeline)
    truth = _truth(catalog, sds, timeline)
    if truth is not None:
        run_dir.write_table(out, run_dir.TRUTH, truth)
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
        "instrument": run_dir.instrument_facts(instrument, market),
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
    in_sample = in_sample_days(bundle.metadata, sds)
    summary: dict[str, Any] = {
        **summarise(pnl, fills, timeline.column("ts").to_numpy(), instrument.quote_currency.code),
        **close,
        "in_sample": bool(in_sample),
        "in_sample_days": in_sample,
        "costs": {**costs.to_dict(), "round_trip_bps_passive": costs.round_trip_bps()},
        "model_test": _model_test(bundle.metadata),
        "symbol": str(instrument.id),
        "days": day_strs,
        "symbol_days": [str(sd) for sd in sds],
        "model_ref": model_ref,
        "model_version": answered[0] if len(answered) == 1 else version,
        "model_versions_answered": answered,
        "serve_url": serve_url,
        "samples": timeline.num_rows,
        **strategy_figures(strategy, events),
        **passive,
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


def simulate_backtest(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None,
    bundle: Any,
    config: PolicyHMMStrategyConfig | None = None,
) -> Any:
    """What :func:`run_backtest` would do with ``bundle`` on these days, replayed by the trade
    simulator instead of Nautilus: the same features (one engine over the days, as the
    backtest's feed), the same decision rules from the same strategy config, the instrument's
    cost model. Returns the :class:`~training.simulation.simulator.SimResult`; the agreement of
    the two is measured by ``bench/bench_simulator.py``."""
    import numpy as np
    import pyarrow as pa

    from node.config import rule_config
    from training.features.offline import extract_many
    from training.features.offline import z_columns
    from training.simulation.simulator import SimMarket
    from training.simulation.simulator import model_answers
    from training.simulation.simulator import simulate

    sds = catalog.select(symbol, days)
    instrument = catalog.instrument(sds[0].instrument_id)
    schema = bundle.feature_schema()
    cfg = config or PolicyHMMStrategyConfig(instrument_id=sds[0].instrument_id)
    hold = cfg.hold_s or label_horizon_s(bundle.metadata) or cfg.default_hold_s
    tables = extract_many(catalog, symbol, [sd.day for sd in sds], schema, progress=False)
    table = pa.concat_tables(list(tables.values()))
    market = SimMarket.from_table(table)
    rows = market.tradable
    X = np.column_stack([table.column(c).to_numpy() for c in z_columns(schema)])[rows]
    actions, confidence = model_answers(
        bundle.hmm_params(), bundle.policy_head(), X, market.cols["session"][rows]
    )
    return simulate(
        market,
        actions,
        confidence,
        rule_config(cfg, instrument, float(hold)),
        backtest_costs(catalog, instrument, sds),
        exit_requote_s=cfg.exit_requote_s,
    )
