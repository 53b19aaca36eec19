"""Statistics of trading results: round trips from fills, bootstrap intervals of a mean.

One owner for both: the trade simulator, ``nhmm train``/``sweep`` test metrics, the backtest
summary and the acceptance checks use these.

>>> rt = round_trips(np.array([1, 2, 3, 4]), np.array([1, -1, -1, 1]), np.ones(4),
...                  np.array([100.0, 101.0, 101.0, 100.5]), np.full(4, 0.01))
>>> rt["gross"].tolist(), rt["fees"].tolist(), rt["side"].tolist()
([1.0, 0.5], [0.02, 0.02], [1, -1])
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MIN_BOOTSTRAP_N", "RT_FIELDS", "block_bootstrap_ci", "day_block_ci", "round_trips"]

#: Columns of :func:`round_trips`: open/close time, side (+1 long), quantity (max |position|),
#: entry notional, gross PnL (quote, before fees), fees (quote).
RT_FIELDS = ("ts_open", "ts_close", "side", "quantity", "notional", "gross", "fees")


def round_trips(
    ts: np.ndarray, side: np.ndarray, qty: np.ndarray, px: np.ndarray, fee: np.ndarray
) -> dict[str, np.ndarray]:
    """Round trips of a netting account from its fills in time order (``side`` +1 buy, -1 sell;
    ``qty`` > 0; ``fee`` in quote): a round trip runs from flat to flat. A fill that flips the
    position closes one round trip and opens the next at the same price; a position still open
    after the last fill is left out (its PnL is in the equity, not in a round trip)."""
    out: dict[str, list[float]] = {k: [] for k in RT_FIELDS}
    pos = cash = fees = notional = size = 0.0
    t_open = 0
    for t, s, q, p, f in zip(
        np.asarray(ts).tolist(), np.asarray(side).tolist(), np.asarray(qty, float).tolist(),
        np.asarray(px, float).tolist(), np.asarray(fee, float).tolist(), strict=True,
    ):  # fmt: skip
        remaining = q
        while remaining > 1e-15:
            if pos == 0.0:
                t_open, cash, fees, notional, size = t, 0.0, 0.0, 0.0, 0.0
                direction = s
            closing = pos != 0.0 and np.sign(pos) != s
            step = min(remaining, abs(pos)) if closing else remaining
            share = step / q
            pos += s * step
            cash -= s * step * p
            fees += f * share
            if not closing:
                notional += step * p
            size = max(size, abs(pos))
            remaining -= step
            if abs(pos) < 1e-12:
                pos = 0.0
                for k, v in zip(RT_FIELDS, (t_open, t, direction, size, notional, cash, fees),
                                strict=True):  # fmt: skip
                    out[k].append(v)
    return {
        k: np.asarray(v, dtype=np.int64 if k in ("ts_open", "ts_close", "side") else np.float64)
        for k, v in out.items()
    }


#: Below this many values a bootstrap's percentiles are too narrow (a handful of resamples of
#: a handful of numbers): :func:`block_bootstrap_ci` gives the Student-t interval instead.
MIN_BOOTSTRAP_N = 10


def block_bootstrap_ci(
    x: np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0, block: int | None = None
) -> tuple[float, float, float]:
    """``(mean, lower, upper)``: percentile CI of the mean of ``x`` by a circular block
    bootstrap (block length ``block``, default ``ceil(n ** (1/3))``, so short-range
    autocorrelation of PnL changes is kept; circular, so the first and last values are drawn as
    often as the rest). Under :data:`MIN_BOOTSTRAP_N` values it is the Student-t interval
    ``mean +- t(n-1) s / sqrt(n)``: wide, as so few values warrant. Fewer than 2 values give a
    zero-width interval at the mean (0 for none).

    >>> m, lo, hi = block_bootstrap_ci(np.arange(100.0))
    >>> m, lo < m < hi
    (49.5, True)
    >>> [round(v, 2) for v in block_bootstrap_ci(np.array([1.0, 2.0, 3.0]))]  # t(2) = 4.30
    [2.0, -0.48, 4.48]
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = float(x.mean())
    if n < 2:
        return mean, mean, mean
    alpha = (1.0 - level) / 2.0
    if n < MIN_BOOTSTRAP_N:
        from scipy.stats import t

        half = float(t.ppf(1.0 - alpha, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
        return mean, mean - half, mean + half
    block = min(block or math.ceil(n ** (1.0 / 3.0)), n)
    n_blocks = math.ceil(n / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(min(lo, mean)), float(max(hi, mean))


def day_block_ci(
    day_pnl: np.ndarray,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    intraday: np.ndarray | None = None,
) -> dict[str, float | int | str]:
    """The CI of the mean PnL per day: a bootstrap over whole days (blocks of one day, so the
    intraday dependence is kept; the t interval under :data:`MIN_BOOTSTRAP_N` days). With one
    day there is nothing to resample: the interval then comes from ``intraday`` (PnL per hour of
    that day, scaled to a day) by :func:`block_bootstrap_ci`, and ``blocks`` says so.

    >>> r = day_block_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    >>> r["mean"], r["blocks"], r["low"] < 2.5 < r["high"]
    (2.5, 'day', True)
    """
    d = np.asarray(day_pnl, dtype=np.float64)
    if len(d) >= 2:
        mean, lo, hi = block_bootstrap_ci(d, level, n_boot, seed, block=1)
        blocks = "day"
    elif intraday is not None and len(intraday) >= 2:
        h = np.asarray(intraday, dtype=np.float64)
        mean, lo, hi = (v * len(h) for v in block_bootstrap_ci(h, level, n_boot, seed))
        blocks = f"hour of one day (x{len(h)})"
    else:
        mean = lo = hi = float(d.sum()) if len(d) else 0.0
        blocks = "none"
    return {"mean": mean, "low": lo, "high": hi, "level": level, "n_days": len(d), "blocks": blocks}
