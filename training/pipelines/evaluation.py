"""Tradeable out-of-sample figures of a model: the trade simulator over a :class:`FeatureSet`.

:func:`simulate_set` replays the strategy's rules (:mod:`training.simulation`) with the model's
answers over the full feature tables of a set's period (fills need every sample, the strategy
acts on the ready ones); :func:`summarise_test` turns a simulation into the ``test`` metrics that
``nhmm train`` prints and bundles carry: net PnL per day with a day-block bootstrap CI, round
trips, fees, gross edge and costs per round trip. ``rules_for`` gives the strategy's default rules
on an instrument (the node's ``PolicyHMMStrategyConfig`` defaults; a test holds them equal).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.costs import CostModel
from training.pipelines.feature_set import FeatureSet
from training.simulation.rules import GuardLimits
from training.simulation.rules import RuleConfig
from training.simulation.simulator import MARKET_COLUMNS
from training.simulation.simulator import SimMarket
from training.simulation.simulator import SimResult
from training.simulation.simulator import model_answers
from training.simulation.simulator import simulate
from training.simulation.stats import day_block_ci

__all__ = ["rules_for", "simulate_set", "summarise_test"]


def rules_for(
    instrument: Any, hold_s: float, limits: GuardLimits | None = None, **overrides: Any
) -> RuleConfig:
    """The strategy's default decision rules on ``instrument`` (its tick, size step, min
    notional), holding for ``hold_s`` (the label horizon, as the backtest does)."""
    return RuleConfig(
        limits=limits or GuardLimits(),
        hold_s=hold_s,
        tick=float(instrument.price_increment),
        min_notional=float(instrument.min_notional) if instrument.min_notional is not None else 0.0,
        size_increment=float(instrument.size_increment),
        min_quantity=float(instrument.min_quantity) if instrument.min_quantity is not None else 0.0,
        **overrides,
    )


def _market(fs: FeatureSet) -> SimMarket:
    """The full sample rows of ``fs``'s tables within its time range."""
    if not fs.tables:
        raise ValueError("FeatureSet has no tables: build it with FeatureSet.from_tables")
    cols = {c: [] for c in MARKET_COLUMNS}
    for t in fs.tables:
        for c in MARKET_COLUMNS:
            if c in ("next_sell_low", "next_buy_high") and c not in t.column_names:
                cols[c].append(np.full(t.num_rows, np.nan))  # no trade extremes: book only
            else:
                cols[c].append(t.column(c).to_numpy(zero_copy_only=False))
    full = {c: np.concatenate(v) for c, v in cols.items()}
    ts = full["ts"]
    keep = (ts >= fs.ts[0]) & (ts <= fs.ts[-1]) if len(fs) else np.zeros(len(ts), bool)
    m = SimMarket({c: v[keep] for c, v in full.items()})
    # only the set's rows may be acted on (a purged or other-period row is not)
    m.cols["ready"] = np.isin(m.cols["ts"], fs.ts) & m.cols["ready"].astype(bool)
    return m


def simulate_set(
    params: Any, policy: Any, fs: FeatureSet, rules: RuleConfig, costs: CostModel
) -> SimResult:
    """The trade simulator over ``fs``'s period with the model ``(params, policy)``."""
    market = _market(fs)
    if int(market.tradable.sum()) != len(fs):
        raise ValueError(
            f"simulate_set: {int(market.tradable.sum())} tradable rows in the tables, "
            f"{len(fs)} in the set"
        )
    sessions = np.repeat(np.arange(len(fs.lengths)), fs.lengths)
    actions, confidence = model_answers(params, policy, fs.X, sessions)
    return simulate(market, actions, confidence, rules, costs)


def summarise_test(
    sim: SimResult, period: str, symbol_days: list[str], level: float = 0.95
) -> dict[str, Any]:
    """The ``test`` metrics of a simulation of a period no choice was made on: net PnL per
    day (quote and bp of one order's notional) with a day-block bootstrap CI, round trips per
    day, fees, gross edge and costs per round trip, hit rate."""
    m = sim.metrics()
    days = sim.daily()
    unit = sim.unit_notional
    day_pnl = np.asarray(list(days.values()))
    ci = day_block_ci(day_pnl, level, intraday=sim.hourly() if len(days) == 1 else None)
    to_bp = (1e4 / unit) if unit > 0 else 0.0
    return {
        "kind": "simulated, out-of-sample (no choice was made on this period)",
        "period": period,
        "symbol_days": symbol_days,
        "in_sample": False,
        **m,
        "daily_net_pnl": days,
        "net_pnl_per_day_ci": [ci["low"], ci["high"]],
        "net_bp_per_day_ci": [ci["low"] * to_bp, ci["high"] * to_bp],
        "ci_level": level,
        "ci_blocks": ci["blocks"],
        "ci_includes_zero": bool(ci["low"] <= 0.0 <= ci["high"]),
    }
