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

__all__ = [
    "MIN_SHARPE_RETURNS",
    "SHARPE_BASIS",
    "adaptation_report",
    "finite_or_none",
    "summarise",
]

#: Fewer 1-minute PnL changes than this and ``sharpe`` is ``null``: too few to mean anything.
MIN_SHARPE_RETURNS = 30
SHARPE_BASIS = "1-minute PnL changes, mean/std annualised by sqrt(525600)"
#: PnL variation below this (quote units) is float rounding of the equity, not a return stream.
_PNL_NOISE = 1e-8


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
        out.append(finite_or_none({"day": day, "drift": drift, "partial_fit": fit}))
    return {"days": out}
