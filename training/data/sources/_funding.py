"""Perpetual funding as Nautilus ``FundingRateUpdate``s: what every funding source emits.

A rate is the fraction paid per funding period (``0.0001`` = 1 bp per 8 h), kept exactly as the
source wrote it (a ``Decimal`` from its text). The catalog stores the updates per symbol-day
(:meth:`~training.data.catalog.MarketCatalog.load_funding`); the feature engine turns the latest
one into ``funding_rate_bp`` offline and online alike.

>>> [u] = funding_updates("BTCUSDT-PERP.BINANCE", [5], [6], ["0.00010000"], [9])
>>> str(u.rate), u.ts_event, u.ts_init, u.next_funding_ns
('0.00010000', 5, 6, 9)
>>> rate_text("1e-4"), rate_text(-0.00012)
('1e-4', '-0.00012')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from decimal import InvalidOperation

from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId

__all__ = ["funding_updates", "rate_text"]

#: A funding rate beyond ±100 % per period is not a rate (Binance caps at a few %).
MAX_ABS_RATE = 1.0


def rate_text(rate: str | float) -> str:
    """``rate`` as the text of a finite rate in [-1, 1]; raises ``ValueError`` otherwise."""
    text = rate if isinstance(rate, str) else repr(float(rate))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not value.is_finite() or not math.isfinite(float(value)) or abs(value) > MAX_ABS_RATE:
        raise ValueError(f"not a funding rate (finite, within ±{MAX_ABS_RATE}): {text!r}")
    return text


def funding_updates(
    instrument_id: str,
    ts_event: Sequence[int],
    ts_init: Sequence[int],
    rates: Sequence[str],
    next_funding_ns: Sequence[int | None] | None = None,
    interval_min: Sequence[int] | None = None,
) -> list[FundingRateUpdate]:
    """One ``FundingRateUpdate`` per row (rates as :func:`rate_text` checked them)."""
    iid = InstrumentId.from_str(instrument_id)
    n = len(rates)
    nxt = [None] * n if next_funding_ns is None else [_int(t) for t in next_funding_ns]
    ivl = [None] * n if interval_min is None else [_int(i) for i in interval_min]
    return [
        FundingRateUpdate(iid, Decimal(r), int(te), int(ti), interval=iv, next_funding_ns=nf)
        for te, ti, r, nf, iv in zip(ts_event, ts_init, rates, nxt, ivl, strict=True)
    ]


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
