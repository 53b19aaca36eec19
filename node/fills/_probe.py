"""A passive quoting probe: what a venue's fill model gives a strategy that only posts."""

from __future__ import annotations

from typing import Any

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

__all__ = ["PassiveProbe", "PassiveProbeConfig"]


class PassiveProbeConfig(StrategyConfig, frozen=True):
    """Post ``size`` at the touch every ``every_s`` seconds when no order is working,
    alternating buy and sell; cancel an order still working after ``ttl_s``."""

    instrument_id: InstrumentId
    size: float = 0.001
    every_s: float = 1.0
    ttl_s: float = 5.0


class PassiveProbe(Strategy):
    """Post-only orders at the best bid / ask, one at a time (:class:`PassiveProbeConfig`):
    its passive fill rate (:func:`node.fills.passive_fill_rate`) measures a fill model."""

    def __init__(self, config: PassiveProbeConfig) -> None:
        super().__init__(config)
        self._posted = 0

    def on_start(self) -> None:
        cfg = self.config
        self.instrument = self.cache.instrument(cfg.instrument_id)
        self.subscribe_order_book_deltas(cfg.instrument_id, BookType.L2_MBP)
        self.clock.set_timer_ns("probe", int(cfg.every_s * 1e9), 0, 0, self._quote)

    def _quote(self, event: Any) -> None:
        cfg = self.config
        now = self.clock.timestamp_ns()
        working = self.cache.orders_open(instrument_id=cfg.instrument_id)
        for order in working:
            if now - order.ts_init >= cfg.ttl_s * 1e9:
                self.cancel_order(order)
        book = self.cache.order_book(cfg.instrument_id)
        if working or book is None or book.best_bid_price() is None:
            return
        side = (OrderSide.BUY, OrderSide.SELL)[self._posted % 2]
        price = book.best_bid_price() if side == OrderSide.BUY else book.best_ask_price()
        if price is None:
            return
        self._posted += 1
        size = self.instrument.make_qty(cfg.size)
        order = self.order_factory.limit(cfg.instrument_id, side, size, price, post_only=True)
        self.submit_order(order)
