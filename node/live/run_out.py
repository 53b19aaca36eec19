"""A live run written as a RUN_DIR (:mod:`node.run_dir`'s contract, as ``nhmm backtest`` writes
it), so ``nhmm acceptance``, ``report`` and ``rollup`` read a paper or live run as a backtest.

Written at every UTC day change of the samples and at the end; every file is replaced
atomically, so a reader never sees half of one. ``pnl`` is equity minus the first sample's
equity (a live account has no configured starting balance).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from node import run_dir
from node.live.config import LiveConfig
from node.summary import adaptation_report
from node.summary import finite_or_none
from node.summary import pnl_curve
from node.summary import strategy_figures
from node.summary import summarise

__all__ = ["write_live_run"]


def _timeline(strategy: Any) -> tuple[pa.Table, dict[str, float]]:
    """The timeline with its ``pnl`` column (:func:`node.summary.pnl_curve`) and the close-out."""
    from training.costs import CostModel

    table = pa.Table.from_pylist(list(strategy.timeline), schema=run_dir.SAMPLE_SCHEMA)
    inst = strategy.instrument
    pnl, close = pnl_curve(strategy, None, None if inst is None else CostModel.for_instrument(inst))
    field = run_dir.TIMELINE_SCHEMA.field("pnl")
    return table.append_column(field, pa.array(pnl, pa.float64())), close


def write_live_run(
    out: Path,
    cfg: LiveConfig,
    strategy: Any,
    trader: Any,
    model: dict[str, Any],
    bundle: Any,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Write ``strategy``'s timeline, entries, blocks, exits, guardrail counts and ``trader``'s
    fills/positions/account reports to ``out``; returns the summary (also ``summary.json``).
    ``model``: ref, version, serve_url, client; ``extra``: run facts added to the summary."""
    from nautilus_trader.model.identifiers import Venue

    out.mkdir(parents=True, exist_ok=True)
    rows = list(strategy.timeline)
    timeline, close = _timeline(strategy)
    fills = trader.generate_fills_report()
    reports = {
        run_dir.FILLS: fills,
        run_dir.POSITIONS: trader.generate_positions_report(),
        run_dir.ACCOUNT: trader.generate_account_report(Venue("BINANCE")),
    }
    for name, df in reports.items():
        run_dir.write_report(out, name, df)
    run_dir.write_table(out, run_dir.TIMELINE, timeline)
    run_dir.write_rows(out, run_dir.ENTRIES, list(strategy.entries))
    run_dir.write_rows(out, run_dir.BLOCKS, list(strategy.blocks))
    run_dir.write_rows(out, run_dir.EXITS, list(strategy.exits))
    counts = strategy.guards.count_dict()
    run_dir.write_json(out, run_dir.GUARDRAILS, counts)
    days = sorted(set(timeline.column("day").to_pylist()))
    live = {
        "environment": cfg.environment,
        "account": cfg.account,
        "replay": list(cfg.replay),
        "speed": cfg.speed if cfg.replay else None,
        "max_notional_per_order": cfg.max_notional_per_order,
        "max_order_submit_rate": cfg.max_order_submit_rate,
    }
    run_dir.write_json(out, run_dir.CONFIG, {
        "strategy": msgspec.to_builtins(strategy.cfg),
        "venue": live,
        "instrument": run_dir.instrument_facts(strategy.instrument, cfg.market),
        "model": model,
    })  # fmt: skip
    if bundle is not None and rows:
        run_dir.write_json(out, run_dir.ADAPTATION, adaptation_report(bundle, timeline, days))
    ts = timeline.column("ts").to_numpy()
    pnl = timeline.column("pnl").to_numpy() if rows else np.zeros(0)
    quote = strategy.instrument.quote_currency.code if strategy.instrument is not None else None
    summary = {
        **summarise(pnl, fills, ts, quote),
        **close,
        "in_sample": False,
        "in_sample_days": [],
        "symbol": cfg.instrument_id,
        "days": days,
        "mode": cfg.mode,
        "live": live,
        "model_ref": model["ref"],
        "model_version": model["version"],
        "model_versions_answered": sorted(strategy.model_versions),
        "serve_url": model["serve_url"],
        "samples": timeline.num_rows,
        **strategy_figures(strategy, strategy.feed.events),
        "guardrails": counts,
        "trading_enabled": strategy.cfg.trading_enabled,
        "written_at": time.time(),
        **extra,
    }
    summary = finite_or_none(summary)
    run_dir.write_json(out, run_dir.SUMMARY, summary)
    return summary
