"""Columnar market events: the one in-memory form every source produces and every reader consumes.

Numpy only (no Nautilus import), so the feature engine, the synthetic market and the catalog
share it. Codes follow Nautilus: ``BookAction`` ADD=1 UPDATE=2 DELETE=3 CLEAR=4, ``OrderSide``
BUY=1 SELL=2, ``AggressorSide`` BUYER=1 SELLER=2, ``RecordFlag`` F_LAST=128 F_SNAPSHOT=32.
Timestamps are UNIX nanoseconds: ``ts_event`` exchange time, ``ts_init`` receive time.

>>> d = DeltaColumns.from_rows([(1, 2, ADD, BUY, 100.0, 1.5, F_LAST, 7)])
>>> len(d), float(d.price[0]), int(d.flags[0])
(1, 100.0, 128)
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from typing import ClassVar
from typing import Self

import numpy as np

from training.errors import BadInputError

__all__ = [
    "ADD",
    "BUY",
    "BUYER",
    "CLEAR",
    "DELETE",
    "F_LAST",
    "F_MBP",
    "F_SNAPSHOT",
    "F_TOB",
    "SELL",
    "SELLER",
    "UPDATE",
    "DeltaColumns",
    "MarketEvents",
    "QuoteColumns",
    "TradeColumns",
]

ADD, UPDATE, DELETE, CLEAR = 1, 2, 3, 4
BUY, SELL = 1, 2
BUYER, SELLER = 1, 2
F_LAST, F_TOB, F_SNAPSHOT, F_MBP = 128, 64, 32, 16

_INT = np.int64


@dataclass(frozen=True, slots=True)
class _Columns:
    """Equal-length numpy columns; subclasses declare the fields and their dtypes."""

    DTYPES: ClassVar[tuple[type, ...]] = ()

    def __len__(self) -> int:
        return len(getattr(self, self.names()[0]))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_rows(cls, rows: list[tuple] | list[list]) -> Self:
        """Build from row tuples in field order."""
        names = cls.names()
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return cls(
            **{n: np.asarray(c, dtype=t) for n, c, t in zip(names, cols, cls.DTYPES, strict=True)}
        )

    @classmethod
    def empty(cls) -> Self:
        return cls.from_rows([])

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        if not parts:
            return cls.empty()
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in cls.names()})

    def take(self, index: np.ndarray | slice) -> Self:
        """Rows selected by a slice, boolean mask or integer index."""
        return type(self)(**{n: getattr(self, n)[index] for n in self.names()})

    def validate(self) -> None:
        """Raise :class:`~training.errors.BadInputError` naming the column on unequal length or
        non-finite values."""
        n = len(self)
        for name in self.names():
            col, field = getattr(self, name), f"{type(self).__name__}.{name}"
            if len(col) != n:
                raise BadInputError(f"{field}: length {len(col)} != {n}", field=field)
            if col.dtype.kind == "f" and not np.isfinite(col).all():
                raise BadInputError(f"{field}: non-finite value", field=field)


@dataclass(frozen=True, slots=True)
class DeltaColumns(_Columns):
    """L2 MBP order-book deltas; the last delta of each exchange message carries ``F_LAST``."""

    ts_event: np.ndarray
    ts_init: np.ndarray
    action: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray
    flags: np.ndarray
    sequence: np.ndarray

    DTYPES: ClassVar[tuple[type, ...]] = (
        _INT,
        _INT,
        np.uint8,
        np.uint8,
        np.float64,
        np.float64,
        np.uint8,
        np.uint64,
    )


@dataclass(frozen=True, slots=True)
class TradeColumns(_Columns):
    """Trades; ``aggressor`` is BUYER (1) when the taker bought."""

    ts_event: np.ndarray
    ts_init: np.ndarray
    price: np.ndarray
    size: np.ndarray
    aggressor: np.ndarray
    trade_id: np.ndarray

    DTYPES: ClassVar[tuple[type, ...]] = (_INT, _INT, np.float64, np.float64, np.uint8, np.int64)


@dataclass(frozen=True, slots=True)
class QuoteColumns(_Columns):
    """Best bid/ask quotes (Binance ``bookTicker``)."""

    ts_event: np.ndarray
    ts_init: np.ndarray
    bid_price: np.ndarray
    bid_size: np.ndarray
    ask_price: np.ndarray
    ask_size: np.ndarray

    DTYPES: ClassVar[tuple[type, ...]] = (
        _INT,
        _INT,
        np.float64,
        np.float64,
        np.float64,
        np.float64,
    )


@dataclass(frozen=True, slots=True)
class MarketEvents:
    """Everything one import produced for one instrument, ordered by ``ts_event`` within each kind."""

    deltas: DeltaColumns
    trades: TradeColumns
    quotes: QuoteColumns

    @classmethod
    def empty(cls) -> MarketEvents:
        """No deltas, trades or quotes."""
        return cls(DeltaColumns.empty(), TradeColumns.empty(), QuoteColumns.empty())

    def __len__(self) -> int:
        return len(self.deltas) + len(self.trades) + len(self.quotes)
