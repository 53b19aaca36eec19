"""The live node's observer: an ``Actor`` beside the strategy that feeds the metrics and
guards the order book.

Metrics: every new timeline row of the strategy (read through a callback, not its internals),
every order submitted and filled (the message bus's order events), the kill switch, and on
USD-M the funding rate of the mark price stream. Book guard: Nautilus's Binance adapter never
checks the diff stream's ``U``/``u``/``pu`` sequence, so a lost diff leaves a silently wrong
book. The observer keeps a managed copy of the book and compares it with every ``bookTicker``
quote: a crossed book, or a best bid/ask on the wrong side of the venue's best quotes for
longer than ``book_check_s`` (exchange time), is a gap; the book is rebuilt from a REST
snapshot (``resync``) and the resync counted. A reconnected market socket (the adapter rebuilds
the book from a snapshot itself) is counted too (:meth:`NodeObserver.market_reconnected`); both
keep the exchange time of the book's last update when they happened (for the parity report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import DataType
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderAccepted
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderSubmitted
from nautilus_trader.model.identifiers import InstrumentId

from node.metrics import NodeMetrics

__all__ = ["BookGuard", "NodeObserver", "ObserverConfig"]


class ObserverConfig(ActorConfig, frozen=True):
    instrument_id: str
    usdm: bool = False
    book_check_s: float = 2.0
    poll_s: float = 0.25


class BookGuard:
    """Decides, quote by quote, whether the node's book disagrees with the venue's best quotes.

    ``check_s``: how long (exchange time) the book may sit on the wrong side of the quotes;
    ``cooldown_s``: wall time after a resync before the next (a snapshot takes a round trip,
    and the venue may hold diffs right after serving one).

    >>> g = BookGuard(2.0, cooldown_s=5.0)
    >>> g.check(10, 99.0, 101.0, 100.0, 100.5, now=0.0)   # consistent
    False
    >>> g.check(11, 101.0, 100.0, 100.0, 100.5, now=0.0)  # crossed: resync at once
    True
    >>> g.check(20, 101.0, 100.0, 100.0, 100.5, now=1.0)  # still crossed, but just resynced
    False
    >>> g.check(30, 98.0, 99.0, 100.0, 100.5, now=9.0)    # ask below the venue's bid: wait...
    False
    >>> g.check(30 + 3 * 10**9, 98.0, 99.0, 100.0, 100.5, now=9.5)  # ... still wrong after 2 s
    True
    >>> g.resyncs
    2
    """

    def __init__(self, check_s: float, cooldown_s: float = 5.0) -> None:
        self.check_ns = int(check_s * 1e9)
        self.cooldown_s = cooldown_s
        self.bad_since: int | None = None
        self.resynced_at: float | None = None
        self.resyncs = 0

    def check(
        self, ts_ns: int, bid: float, ask: float, venue_bid: float, venue_ask: float,
        now: float | None = None,
    ) -> bool:  # fmt: skip
        """``True`` when the book must be rebuilt now (the caller resyncs)."""
        now = time.monotonic() if now is None else now
        if self.resynced_at is not None and now - self.resynced_at < self.cooldown_s:
            self.bad_since = None
            return False
        if bid >= ask:
            return self._resync(now)
        if bid <= venue_ask and ask >= venue_bid:
            self.bad_since = None
            return False
        if self.bad_since is None:
            self.bad_since = ts_ns
        if ts_ns - self.bad_since >= self.check_ns:
            return self._resync(now)
        return False

    def _resync(self, now: float) -> bool:
        self.bad_since = None
        self.resynced_at = now
        self.resyncs += 1
        return True


class NodeObserver(Actor):
    """Feeds ``metrics`` from the node; ``rows()`` returns the strategy's timeline rows so far,
    ``state()`` ``(equity peak, kill switch tripped, kill reason)``; ``resync()`` rebuilds the
    book from a snapshot; ``on_day_end(day)`` is called when the samples pass a UTC midnight."""

    def __init__(
        self,
        config: ObserverConfig,
        metrics: NodeMetrics,
        rows: Callable[[], list[dict[str, Any]]],
        state: Callable[[], tuple[float | None, bool, str]],
        resync: Callable[[], None],
        on_day_end: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.iid = InstrumentId.from_str(config.instrument_id)
        self.metrics = metrics
        self._rows = rows
        self._state = state
        self._resync = resync
        self._on_day_end = on_day_end
        self._day: str | None = None
        self.guard = BookGuard(config.book_check_s)
        self.resync_ts: list[int] = []  # exchange time of the book at each resync
        self.reconnect_ts: list[int] = []  # ... at each market socket reconnect
        self._seen = 0
        self.orders = 0
        self.acks = 0
        self.fills = 0
        self.funding_updates = 0

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.iid, BookType.L2_MBP, managed=True)
        self.subscribe_quote_ticks(self.iid)
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        if self.config.usdm:
            from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate

            self.subscribe_data(
                DataType(BinanceFuturesMarkPriceUpdate, metadata={"instrument_id": self.iid}),
                instrument_id=self.iid,
            )
        self.clock.set_timer("nhmm-metrics", interval=_td(self.config.poll_s), callback=self._poll)

    def on_stop(self) -> None:
        self._poll(None)

    def _poll(self, _event: Any) -> None:
        rows = self._rows()
        peak, tripped, reason = self._state()
        new, self._seen = rows[self._seen :], len(rows)
        for row in new:
            self.metrics.observe_sample(row, peak=peak)
            if self._day is not None and row["day"] != self._day and self._on_day_end:
                self._on_day_end(self._day)
            self._day = row["day"]
        self.metrics.set_killswitch(tripped, reason)

    def _on_order_event(self, event: Any) -> None:
        if isinstance(event, OrderSubmitted):
            order = self.cache.order(event.client_order_id)
            if order is None:
                return
            side = "buy" if order.side == OrderSide.BUY else "sell"
            net = float(self.portfolio.net_position(self.iid) or 0)
            reduces = (net > 0 and side == "sell") or (net < 0 and side == "buy")
            self.metrics.observe_order(side, "exit" if reduces else "entry")
            self.orders += 1
        elif isinstance(event, OrderAccepted):
            self.acks += 1
        elif isinstance(event, OrderFilled):
            side = "buy" if event.order_side == OrderSide.BUY else "sell"
            self.metrics.observe_fill(
                side,
                event.last_qty.as_double(),
                event.last_px.as_double(),
                event.commission.as_double(),
                event.liquidity_side.name,
            )
            self.fills += 1

    def on_data(self, data: Any) -> None:
        rate = getattr(data, "funding_rate", None)
        if rate is not None:
            self.metrics.observe_funding(float(rate))
            self.funding_updates += 1

    def on_quote_tick(self, tick: QuoteTick) -> None:
        book = self.cache.order_book(self.iid)
        if book is None:
            return
        bid, ask = book.best_bid_price(), book.best_ask_price()
        if bid is None or ask is None:
            return
        if self.guard.check(tick.ts_event, bid.as_double(), ask.as_double(),
                            tick.bid_price.as_double(), tick.ask_price.as_double()):  # fmt: skip
            self.log.warning(
                f"order book out of sync (bid {bid} ask {ask}, venue {tick.bid_price} "
                f"{tick.ask_price}): resync #{self.guard.resyncs} from a snapshot"
            )
            self.resync_ts.append(int(book.ts_last))
            self._resync()

    def market_reconnected(self) -> None:
        """A market socket came back (the adapter takes a new snapshot): count it."""
        book = self.cache.order_book(self.iid)
        self.reconnect_ts.append(int(book.ts_last) if book is not None else 0)
        self.log.warning(
            f"market socket reconnected (#{len(self.reconnect_ts)}): the book is rebuilt from a "
            "snapshot"
        )


def _td(seconds: float) -> Any:
    import datetime

    return datetime.timedelta(seconds=seconds)
