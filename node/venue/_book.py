"""The venue's symbol facts and its one authoritative L2 book (snapshot + every broadcast diff).

Prices and sizes are written back with the decimals of the recorded strings, so ``GET depth``
serves the same text the diff stream carries. The book is a :class:`training.data.book.L2Book`.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from node.venue.queue import BUY
from node.venue.queue import SELL
from node.venue.recording import Recording
from training.data.book import L2Book
from training.data.instruments import binance_instrument
from training.data.instruments import load_exchange_info


def _decimals(text: str) -> int:
    return len(text) - text.index(".") - 1 if "." in text else 0


@dataclass(frozen=True)
class SymbolSpec:
    """Exchange facts of the replayed symbol, from the ``exchangeInfo`` the venue serves."""

    market: str
    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    price_decimals: int  # what the adapter's instrument uses (tickSize string as served)
    size_decimals: int
    exchange_info: dict[str, Any]

    @classmethod
    def load(cls, recording: Recording, exchange_info: Path | None = None) -> SymbolSpec:
        market = recording.market
        info = load_exchange_info(exchange_info, market)  # type: ignore[arg-type]
        inst = binance_instrument(recording.symbol, market, exchange_info)  # type: ignore[arg-type]
        entry = next(e for e in info["symbols"] if e.get("symbol") == recording.symbol)
        filters = {f["filterType"]: f for f in entry["filters"]}
        served = dict(info, symbols=[entry])
        return cls(
            market=market,
            symbol=recording.symbol,
            base=entry["baseAsset"],
            quote=entry["quoteAsset"],
            tick=inst.price_increment.as_decimal(),
            step=inst.size_increment.as_decimal(),
            min_qty=inst.min_quantity.as_decimal() if inst.min_quantity else Decimal(0),
            max_qty=inst.max_quantity.as_decimal() if inst.max_quantity else Decimal("1e12"),
            min_notional=inst.min_notional.as_decimal() if inst.min_notional else Decimal(0),
            maker_fee=Decimal(str(inst.maker_fee)),
            taker_fee=Decimal(str(inst.taker_fee)),
            price_decimals=_decimals(filters["PRICE_FILTER"]["tickSize"]),
            size_decimals=_decimals(filters["LOT_SIZE"]["stepSize"]),
            exchange_info=served,
        )

    def px(self, value: float | Decimal) -> str:
        return f"{value:.{self.price_decimals}f}"

    def qty(self, value: float | Decimal) -> str:
        return f"{value:.{self.size_decimals}f}"


class VenueBook:
    """Price -> size per side, the last broadcast ``u``, and the recorded string format."""

    def __init__(self, recording: Recording) -> None:
        self._recording = recording
        self.book = L2Book()
        self.last_u = 0
        self._pd, self._sd = recording.price_decimals, recording.size_decimals
        self.reset()

    def reset(self) -> None:
        """Back to the recording's snapshot."""
        rec = self._recording
        self.book.clear()
        self.book.bids.update((float(p), float(q)) for p, q in rec.bids if float(q) > 0)
        self.book.asks.update((float(p), float(q)) for p, q in rec.asks if float(q) > 0)
        self.book.touch()
        self.last_u = rec.last_update_id

    def apply(
        self, bids: Iterable[list[str]], asks: Iterable[list[str]], u: int
    ) -> Iterator[tuple[int, float, float]]:
        """Apply one diff; yields ``(side, price, size)`` per level it touched."""
        for side, levels, target in ((BUY, bids, self.book.bids), (SELL, asks, self.book.asks)):
            for p_text, q_text in levels:
                p, q = float(p_text), float(q_text)
                if q > 0.0:
                    target[p] = q
                else:
                    target.pop(p, None)
                yield side, p, q
        self.book.touch()
        self.last_u = u

    def freeze(self) -> tuple[int, list[tuple[float, float]], list[tuple[float, float]]]:
        """The whole book now, best first, with the ``u`` it includes."""
        bids = sorted(self.book.bids.items(), reverse=True)
        return self.last_u, bids, sorted(self.book.asks.items())

    def snapshot(
        self, frozen: tuple[int, list[tuple[float, float]], list[tuple[float, float]]], limit: int
    ) -> dict[str, Any]:
        """``GET depth`` body: the top ``limit`` levels of a frozen book, as recorded text."""
        pf, sf = f"{{:.{self._pd}f}}".format, f"{{:.{self._sd}f}}".format
        u, bids, asks = frozen
        return {
            "lastUpdateId": u,
            "bids": [[pf(p), sf(q)] for p, q in bids[:limit]],
            "asks": [[pf(p), sf(q)] for p, q in asks[:limit]],
        }

    def size_at(self, side: int, price: float) -> float:
        return (self.book.bids if side == BUY else self.book.asks).get(price, 0.0)

    def best(self, side: int) -> float | None:
        level = self.book.best_bid() if side == BUY else self.book.best_ask()
        return level[0] if level else None

    def mid(self) -> float | None:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2

    def walk(self, side: int, limit: float | None) -> Iterator[tuple[float, float]]:
        """Levels a ``side`` taker order meets, best first, up to its ``limit`` price."""
        if side == BUY:
            for p, q in sorted(self.book.asks.items()):
                if limit is not None and p > limit:
                    return
                yield p, q
        else:
            for p, q in sorted(self.book.bids.items(), reverse=True):
                if limit is not None and p < limit:
                    return
                yield p, q
