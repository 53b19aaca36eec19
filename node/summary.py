"""What a backtest reports beside its tables: the strategy figures (``summary.json``) and the
per-day adaptation exercise (``adaptation.json``).

Money figures come from the per-sample PnL curve (quote, after fees, the starting inventory's
price drift removed) and the fills; JSON gets no NaN (:func:`finite_or_none`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from training.artifacts.bundle import ModelBundle
    from training.costs import CostModel

__all__ = [
    "MIN_SHARPE_RETURNS",
    "SHARPE_BASIS",
    "adaptation_report",
    "finite_or_none",
    "interval_marks",
    "pnl_curve",
    "round_trip_figures",
    "strategy_figures",
    "summarise",
]

#: Fewer 1-minute PnL changes than this and ``sharpe`` is ``null``: too few to mean anything.
MIN_SHARPE_RETURNS = 30
SHARPE_BASIS = (
    "1-minute changes of the PnL marked at the last sample of each clock minute (minutes without "
    "samples are left out), mean/std annualised by sqrt(525600)"
)


def interval_marks(
    ts_ns: np.ndarray, pnl: np.ndarray, interval_s: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(index of the last sample, PnL change)`` per clock interval that has samples: the PnL
    marked at the end of each ``interval_s`` bucket minus the previous bucket's mark (the first
    bucket's change is from 0). One owner for the Sharpe here and the acceptance PnL rule.

    >>> idx, d = interval_marks(np.array([0, 30, 61, 200]) * 10**9, np.array([0.0, 1.0, 3.0, 2.0]))
    >>> idx.tolist(), d.tolist()
    ([1, 2, 3], [1.0, 2.0, -1.0])
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    pnl = np.asarray(pnl, dtype=np.float64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    bucket = ts // int(interval_s * 1e9)
    last = np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])
    return last, np.diff(np.r_[0.0, pnl[last]])


def round_trip_figures(fills: pd.DataFrame, quote: str | None = None) -> dict[str, float | int]:
    """Round trips of the run's fills (:func:`training.simulation.stats.round_trips`): how many,
    the gross edge and the costs (fees) per round trip, in quote and in bp of the entry notional,
    so a reader sees at once whether the model beats its fees."""
    from training.simulation.stats import round_trips

    out: dict[str, float | int] = {"round_trips": 0}
    if fills.empty:
        return out | dict.fromkeys(("gross_edge_per_rt", "cost_per_rt", "gross_edge_bp_per_rt",
                                    "cost_bp_per_rt", "net_bp_per_rt"), 0.0)  # fmt: skip
    f = fills.sort_values("ts_event") if "ts_event" in fills.columns else fills
    side = np.where(f["order_side"].astype(str).str.upper() == "BUY", 1, -1)
    qty = pd.to_numeric(f["last_qty"]).to_numpy(dtype=float)
    px = pd.to_numeric(f["last_px"]).to_numpy(dtype=float)
    fee = np.asarray(
        [_commission_quote(c, p, quote) for c, p in zip(f["commission"], px, strict=True)]
    )
    ts = (pd.to_datetime(f["ts_event"], utc=True).astype("int64").to_numpy()
          if "ts_event" in f.columns else np.arange(len(f)))  # fmt: skip
    rt = round_trips(ts, side, qty, px, fee)
    n = len(rt["gross"])
    notional = np.maximum(rt["notional"], 1e-300)
    gross_bp, cost_bp = rt["gross"] / notional * 1e4, rt["fees"] / notional * 1e4
    return {
        "round_trips": n,
        "gross_edge_per_rt": float(rt["gross"].mean()) if n else 0.0,
        "cost_per_rt": float(rt["fees"].mean()) if n else 0.0,
        "gross_edge_bp_per_rt": float(gross_bp.mean()) if n else 0.0,
        "cost_bp_per_rt": float(cost_bp.mean()) if n else 0.0,
        "net_bp_per_rt": float((gross_bp - cost_bp).mean()) if n else 0.0,
    }


def _commission_quote(commission: object, px: float, quote: str | None = None) -> float:
    """A Nautilus commission string (``"0.0210 USDT"``) in the instrument's ``quote`` currency:
    a base-currency commission (spot buys can be charged in BTC) is converted at the fill price.
    Without ``quote``, USD-like currencies count as quote.

    >>> _commission_quote("0.5 USDT", 100.0), _commission_quote("0.001 BTC", 100.0)
    (0.5, 0.1)
    >>> _commission_quote("0.000001 BTC", 0.00002, quote="BTC")  # ADABTC: BTC is the quote
    1e-06
    """
    amount, _, ccy = str(commission).partition(" ")
    value = float(amount)
    is_quote = ccy == quote if quote else ccy.endswith(("USDT", "USDC", "USD", "BUSD", "FDUSD"))
    return value if not ccy or is_quote else value * px


#: PnL variation below this (quote units) is float rounding of the equity, not a return stream.
_PNL_NOISE = 1e-8


def summarise(
    pnl: np.ndarray, fills: pd.DataFrame, ts_ns: np.ndarray, quote: str | None = None
) -> dict[str, float | int | str | None]:
    """Strategy figures from the per-sample PnL curve (quote, after fees, starting inventory's
    price drift removed; samples at ``ts_ns``) and the fills: net PnL, Sharpe of the PnL marked
    at each clock minute's last sample (annualised; ``None`` below :data:`MIN_SHARPE_RETURNS`
    changes or with no real variation), max drawdown, trades, turnover, fees, and the round
    trips' gross edge and costs (:func:`round_trip_figures`). Empty inputs give zeros, never NaN.

    >>> s = summarise(np.array([0.0, 2.0, 1.0, 3.0]), pd.DataFrame(), np.arange(4) * 60 * 10**9)
    >>> s["net_pnl"], s["max_drawdown"], s["trades"], s["sharpe"], s["n_returns"]
    (3.0, 1.0, 0.0, None, 3)
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    if not np.isfinite(pnl).all():
        raise ValueError("pnl: non-finite value in the PnL curve")
    net = float(pnl[-1]) if len(pnl) else 0.0
    _, rets = interval_marks(ts_ns, pnl)
    rets = rets[1:]  # the first minute's change is from the run's start, not a 1-minute change
    sharpe = None
    if len(rets) >= MIN_SHARPE_RETURNS and float(rets.std()) > _PNL_NOISE:
        sharpe = float(rets.mean() / rets.std() * math.sqrt(365 * 24 * 60))
    max_dd = float((np.maximum.accumulate(pnl) - pnl).max()) if len(pnl) else 0.0
    turnover = fees = 0.0
    if not fills.empty:
        qty = pd.to_numeric(fills["last_qty"]).to_numpy(dtype=float)
        px = pd.to_numeric(fills["last_px"]).to_numpy(dtype=float)
        turnover = float((qty * px).sum())
        fees = float(sum(_commission_quote(c, p, quote) for c, p in zip(fills["commission"], px,
                                                                        strict=True)))  # fmt: skip
    return {
        **round_trip_figures(fills, quote),
        "net_pnl": net,
        "sharpe": sharpe,
        "sharpe_basis": SHARPE_BASIS,
        "n_returns": len(rets),
        "max_drawdown": max_dd,
        "trades": float(len(fills)),
        "turnover": turnover,
        "fees": fees,
    }


def pnl_curve(
    strategy: Any,
    starting_quote: float | None,
    costs: CostModel | None,
    *,
    charge_funding: bool = False,
) -> tuple[np.ndarray, dict[str, float]]:
    """The run's PnL per sample (quote, after fees: equity minus the starting quote, or minus
    the first sample's equity when ``None`` (a live run), so the starting inventory's drift is
    out), its last value net of closing the position still open at the last usable book
    (:meth:`~training.costs.CostModel.close_out_quote`, as the trade simulator does; no
    ``costs``, no close): a period's PnL is what could have been banked, not a mark at mid.
    ``charge_funding`` (backtests: Nautilus's simulated venue settles no funding; a live
    account is settled by the exchange itself) takes off the perp funding the position path
    paid (:meth:`~training.costs.CostModel.funding_paid_quote`). Returns the curve and
    ``{"open_position_end", "close_cost"}`` (summary keys), with ``"funding"`` (quote paid)
    when charged."""
    rows = strategy.timeline
    equity = np.asarray([r["equity"] for r in rows], dtype=np.float64)
    base = starting_quote if starting_quote is not None else (equity[0] if len(equity) else 0.0)
    pnl = equity - base
    funding = np.zeros(len(pnl))
    if charge_funding and costs is not None and rows:
        funding = costs.funding_paid_quote(
            [r["ts"] for r in rows], [r["position"] for r in rows], [r["mid"] for r in rows]
        )
        pnl -= funding
    position = float(rows[-1]["position"]) if rows else 0.0
    book = strategy.last_priced
    cost = 0.0
    if position != 0.0 and book is not None and costs is not None:
        cost = costs.close_out_quote(position, book.mid, book.best_bid, book.best_ask)
        pnl[-1] -= cost
    out = {"open_position_end": position, "close_cost": cost}
    if charge_funding:
        out["funding"] = float(funding[-1]) if len(funding) else 0.0
    return pnl, out


def strategy_figures(strategy: Any, events: int) -> dict[str, Any]:
    """The summary's figures a strategy counted: decisions, entries, exits by reason, orders,
    inference answers, and the ``events`` its feed consumed (``summary.json`` keys)."""
    from training.simulation.execution import EXIT_REASONS

    final = [e for e in strategy.exits if not e["requote"]]
    return {
        "decisions": strategy.decisions,
        "entries": len(strategy.entries),
        "exits": len(final),
        "exit_reasons": {r: sum(1 for e in final if e["reason"] == r) for r in EXIT_REASONS},
        "hold_s": strategy.hold_s,
        "orders_submitted": strategy.orders_submitted,
        "exit_orders_submitted": strategy.exit_orders_submitted,
        "inference_status": dict(strategy.status_counts),
        "events": events,
    }


def finite_or_none(v: Any) -> Any:
    """JSON has no NaN: non-finite floats become ``None`` (recursively).

    >>> finite_or_none({"a": [1.0, float("nan")], "b": float("inf")})
    {'a': [1.0, None], 'b': None}
    """
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x) for x in v]
    return v


def adaptation_report(bundle: ModelBundle, timeline: pa.Table, days: list[str]) -> dict[str, Any]:
    """Per day of ``days``: a fresh ``DriftMonitor`` fed that day's answered samples (features,
    log-likelihood), its scores once a minute (``scores``: ts, max KL, adapting: what the report's
    drift panel shows) and one guarded ``partial_fit`` of the bundle's HMM on them (never
    registered). A failure is recorded in ``partial_fit.error``, never raised."""
    from serving.adapt import partial_fit_bundle
    from serving.drift import DriftMonitor

    answered = timeline.filter(pc.greater_equal(timeline["state"], 0))
    col_day = answered["day"].to_pylist()
    feats = answered["features"].to_pylist()
    logliks = answered["loglik"].to_pylist()
    ts = (answered["ts"].to_numpy() if "ts" in answered.column_names
          else np.zeros(answered.num_rows, dtype=np.int64))  # fmt: skip
    out = []
    for day in days:
        rows = [i for i, d in enumerate(col_day) if d == day]
        monitor = DriftMonitor(bundle)
        scores: dict[str, list[Any]] = {"ts": [], "max_kl": [], "adapting": []}
        minute = None
        for i in rows:
            monitor.update(np.asarray(feats[i], dtype=np.float64), float(logliks[i]))
            if ts[i] // 60_000_000_000 != minute:  # the monitor's state once a minute
                minute = ts[i] // 60_000_000_000
                scores["ts"].append(int(ts[i]))
                scores["max_kl"].append(monitor.max_kl())
                scores["adapting"].append(bool(monitor.adapting))
        fit: dict[str, Any] = dict.fromkeys(
            ("accepted", "reason", "heldout_ll_before", "heldout_ll_after"), None
        )
        fit.update(n_samples=len(rows), error=None)
        try:
            X = np.asarray([feats[i] for i in rows], dtype=np.float64).reshape(len(rows), -1)
            result, _ = partial_fit_bundle(bundle, X)
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
        out.append(
            finite_or_none({"day": day, "drift": drift, "scores": scores, "partial_fit": fit})
        )
    return {"days": out}
