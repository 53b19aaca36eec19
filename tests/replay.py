"""Replay catalog data through a real Nautilus ``BacktestEngine`` (the project's Binance engine)
and count what a subscribed actor receives; tests then compare the engine's book with ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument

from node.engine import binance_engine


class CountingActor(Actor):
    """Subscribes to L2_MBP deltas and trades; counts batches (exchange messages), deltas, trades."""

    def __init__(self, instrument_id: InstrumentId) -> None:
        super().__init__()
        self.instrument_id = instrument_id
        self.batches = self.deltas = self.trades = 0

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, book_type=BookType.L2_MBP)
        self.subscribe_trade_ticks(self.instrument_id)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.batches += 1
        self.deltas += len(deltas.deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.trades += 1


@contextmanager
def replayed(
    instrument: Instrument, market: str, *data: list[Any]
) -> Iterator[tuple[CountingActor, OrderBook]]:
    """Run ``data`` (lists of Nautilus objects) through the engine; yields the counting actor and
    the engine's final order book, valid until the block exits (the engine is disposed then)."""
    engine = binance_engine(
        instrument, market, trader_id="TESTER-001", starting_quote=1e6, starting_base=10.0
    )
    try:
        for items in data:
            engine.add_data(items)
        probe = CountingActor(instrument.id)
        engine.add_actor(probe)
        engine.run()
        yield probe, engine.cache.order_book(instrument.id)
    finally:
        engine.dispose()
