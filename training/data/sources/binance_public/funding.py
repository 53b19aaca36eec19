"""USD-M ``fundingRate`` files (data.binance.vision ``futures/um/monthly/fundingRate``) → funding.

Columns ``calc_time,funding_interval_hours,last_funding_rate``: one row per settlement, the time
(ms) and the rate SETTLED then (fraction per period). This is coarser than a recording's
``@markPrice`` frames, whose ``r`` is the running estimate of the next settlement's rate, updated
every (1 or 3) seconds: fed from these files, ``funding_rate_bp`` is the last settled rate, held
for the whole next period. One ``FundingRateUpdate`` per row: ``ts_event = ts_init = calc_time``,
``interval`` in minutes, ``next_funding_ns = calc_time + interval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nautilus_trader.model.data import FundingRateUpdate

from training.data.csv import Layout
from training.data.csv import read_csv
from training.data.sources._funding import funding_updates
from training.data.sources._funding import rate_text

__all__ = ["FUNDING_LAYOUTS", "FundingRows", "funding_to_updates", "parse_funding_rate"]

FUNDING_LAYOUTS = (Layout.of("calc_time:i,funding_interval_hours:i,last_funding_rate:s"),)
_HOUR_NS = 3600 * 1_000_000_000


@dataclass(frozen=True)
class FundingRows:
    """Settlements of one file, by time: ns stamps, interval hours, rates as written."""

    ts: np.ndarray
    interval_h: np.ndarray
    rates: list[str]


def parse_funding_rate(path: Path) -> FundingRows:
    """A ``fundingRate`` CSV(.zip) → checked rows; a bad value names ``file:line`` and column."""
    src = read_csv(path, FUNDING_LAYOUTS)
    ts = src.ns("calc_time")
    hours = src.column("funding_interval_hours")
    src.require(hours <= 0, "funding_interval_hours", "interval must be > 0 hours")
    rates = src.table.column("last_funding_rate").to_pylist()
    for row, text in enumerate(rates):
        try:
            rate_text(text)
        except ValueError as exc:
            raise src.fail(row, "last_funding_rate", str(exc)) from None
    order = np.argsort(ts, kind="stable")
    return FundingRows(ts[order], hours[order], [rates[i] for i in order])


def funding_to_updates(instrument_id: str, rows: list[FundingRows]) -> list[FundingRateUpdate]:
    """Every file's settlements as ``FundingRateUpdate``s of ``instrument_id``, by time."""
    if not rows:
        return []
    ts = np.concatenate([r.ts for r in rows])
    hours = np.concatenate([r.interval_h for r in rows])
    rates = [x for r in rows for x in r.rates]
    order = np.argsort(ts, kind="stable").tolist()
    ts, hours = ts[order], hours[order]
    return funding_updates(
        instrument_id, ts, ts, [rates[i] for i in order], ts + hours * _HOUR_NS, hours * 60
    )
