"""Binance ``1m`` klines → Nautilus ``BinanceBar``s (``<INSTRUMENT>-1-MINUTE-LAST-EXTERNAL``).

A ``BinanceBar`` is the ``Bar`` subclass Nautilus's own Binance adapter delivers live: it keeps
the kline's quote volume, trade count and taker-buy volumes, which a plain ``Bar`` drops and
FEATURES_BARS_V1 needs (:mod:`training.features.bars`). Bars are written with
:meth:`training.data.catalog.MarketCatalog.write_data` (one file per UTC day, all or nothing,
``data/binance_bar/<bar_type>/``; read them with ``query(BinanceBar, ...)``); their prices and
volumes take part in the import's precision fit. The extra volumes are plain-notation
``Decimal``s of the parsed floats, so ``float()`` gives back exactly the value in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from nautilus_trader.adapters.binance import BinanceBar  # also registers its catalog schema
from nautilus_trader.model.data import BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from training.data.csv import Layout
from training.data.csv import read_csv
from training.data.sources.binance_public._parse import sorted_by

__all__ = ["KLINE_LAYOUTS", "Klines", "bar_type_for", "klines_to_bars", "parse_klines"]

KLINE_LAYOUTS = (
    Layout.of(
        "open_time:i,open:f,high:f,low:f,close:f,volume:f,close_time:i,quote_volume:f,"
        "count:i,taker_buy_volume:f,taker_buy_quote_volume:f,ignore:f"
    ),
)


@dataclass(frozen=True)
class Klines:
    """1-minute klines as columns (ns timestamps)."""

    open_time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    count: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote_volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)

    @property
    def prices(self) -> list[np.ndarray]:
        """Open, high, low and close (for the instrument precision fit)."""
        return [self.open, self.high, self.low, self.close]


def parse_klines(path: Path) -> Klines:
    """Binance kline CSV (12 columns, header or not) → columns, checked for sane OHLC."""
    src = read_csv(path, KLINE_LAYOUTS)
    o, h, lo, c = (src.column(n) for n in ("open", "high", "low", "close"))
    for name, values in (("open", o), ("high", h), ("low", lo), ("close", c)):
        src.require(values <= 0, name, "price must be > 0")
    src.require(h < np.maximum.reduce([o, c, lo]), "high", "high below open/close/low")
    src.require(lo > np.minimum(o, c), "low", "low above open/close")
    vol, taker = src.column("volume"), src.column("taker_buy_volume")
    src.require(vol < 0, "volume", "volume must be >= 0")
    src.require((taker < 0) | (taker > vol), "taker_buy_volume", "must be in [0, volume]")
    src.require(src.column("count") < 0, "count", "trade count must be >= 0")
    for name in ("quote_volume", "taker_buy_quote_volume"):
        src.require(~(src.column(name) >= 0), name, "must be >= 0")
    open_ns = src.ns("open_time")
    close_ns = src.ns("close_time")
    src.require(close_ns <= open_ns, "close_time", "close_time must be after open_time")
    order = sorted_by(open_ns)
    return Klines(
        open_ns[order], close_ns[order], o[order], h[order], lo[order], c[order], vol[order],
        *(src.column(n)[order] for n in ("quote_volume", "count", "taker_buy_volume",
                                         "taker_buy_quote_volume")),
    )  # fmt: skip


def bar_type_for(instrument: Instrument) -> BarType:
    """``<INSTRUMENT>-1-MINUTE-LAST-EXTERNAL``."""
    return BarType.from_str(f"{instrument.id.value}-1-MINUTE-LAST-EXTERNAL")


def _decimal(value: float) -> Decimal:
    """The parsed float as a plain-notation ``Decimal`` (``float()`` of it round-trips).

    >>> _decimal(1e-05), _decimal(1e16), float(_decimal(1.03547608)) == 1.03547608
    (Decimal('0.00001'), Decimal('10000000000000000'), True)
    """
    return Decimal(f"{Decimal(repr(float(value))):f}")


def klines_to_bars(instrument: Instrument, klines: Klines) -> list[BinanceBar]:
    """1m klines → ``BinanceBar``s at the instrument's precisions; ``ts_event`` = kline close
    time, as Nautilus's own Binance adapter does."""
    bar_type = bar_type_for(instrument)
    pp, sp = int(instrument.price_precision), int(instrument.size_precision)
    bars = []
    for i in range(len(klines)):
        ts = int(klines.close_time[i])
        bars.append(
            BinanceBar(
                bar_type,
                Price(float(klines.open[i]), pp),
                Price(float(klines.high[i]), pp),
                Price(float(klines.low[i]), pp),
                Price(float(klines.close[i]), pp),
                Quantity(float(klines.volume[i]), sp),
                _decimal(klines.quote_volume[i]),
                int(klines.count[i]),
                _decimal(klines.taker_buy_volume[i]),
                _decimal(klines.taker_buy_quote_volume[i]),
                ts,
                ts,
            )
        )
    return bars
