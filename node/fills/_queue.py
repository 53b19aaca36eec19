"""The FIFO queue rule inside a Nautilus ``BacktestEngine`` venue: a simulation module that keeps
the queue of every resting LIMIT order, and a fill model that fills makers only by it.

:class:`QueueTracker` (a ``SimulationModule``) sees every book delta and trade before the
matching engine does, and every order event. It keeps one :class:`~node.venue.queue.QueueBook`
per instrument: an accepted LIMIT order joins behind the displayed size at its price on its side
of the venue's book; after each book change the size ahead shrinks to the level's displayed size
(cancels ahead); a trade at the price eats the size ahead first, a trade through it sweeps the
level. Each trade's fills are *granted* before the matching engine sees the trade. One more
way to fill, outside the queue: when the book shows nobody at the order's price and the other
side reaches it, that incoming order would have met ours first (no trade is on the tape, since
ours was not there): the fill comes from that displayed size, at the order's price.

:class:`QueueFillModel` answers the matching engine's ``get_orderbook_for_fill_simulation`` for
a resting (``MAKER``) order with a one-level book holding exactly its grant (none: an empty
book, no fill; the venue runs with ``liquidity_consumption=True``, which skips empty fills
quietly). Takers get ``None``: Nautilus walks its own L2 book, consuming displayed liquidity.

The book is read at the end of each exchange message (the delta flagged ``F_LAST``, as the
engine's ``buffer_deltas`` also needs). Feed order: data replays in receive order, so a trade can arrive after a depth update that
already shows it (its exchange time ``ts_event`` is not after the book's). Such a trade is not
counted twice: an order that joined a book already showing it ignores it, and a shrink of the
queue by a later book change is undone for the trade, then re-applied. A book gap (a lone
CLEAR) or a snapshot freezes the size ahead until the snapshot's last delta
(``F_SNAPSHOT | F_LAST``), after which it shrinks to what the new book shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderType
from nautilus_trader.model.events import OrderAccepted
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderUpdated

from node.venue.queue import BUY
from node.venue.queue import SELL
from node.venue.queue import SELLER
from node.venue.queue import QueueBook
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT

__all__ = ["QueueFillModel", "QueueTracker"]

_SNAPSHOT_END = F_SNAPSHOT | F_LAST
_OPPOSITE = {OrderSide.BUY: OrderSide.SELL, OrderSide.SELL: OrderSide.BUY}
_UNKNOWN = float("inf")  # size ahead of an order that joined while the book was unknown


@dataclass
class _Level:
    """A price level holding tracked orders: the last size the book showed there and the book
    changes since the last trade (``(ts_event, size)``)."""

    side: int
    key: float
    price: Any  # Nautilus Price
    shown: float = -1.0
    ids: list[Any] = field(default_factory=list)
    seen: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class _Tracked:
    """A tracked order: its level, the book's ``ts_event`` when it joined, and the size ahead
    that book changes took off since the last trade (``(ts_event, size)``)."""

    level: _Level
    since: int
    cuts: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class _Queues:
    """One instrument: its queue book, tracked orders and levels, this trade's grants."""

    instrument: Any
    book: Any  # the venue's own L2 book (read, never changed)
    queue: QueueBook = field(init=False)
    orders: dict[Any, _Tracked] = field(default_factory=dict)
    levels: dict[tuple[int, float], _Level] = field(default_factory=dict)
    grants: dict[Any, float] = field(default_factory=dict)
    unknown: set[Any] = field(default_factory=set)
    frozen: bool = False
    empty: Any = None  # the answer "no fill"

    def __post_init__(self) -> None:
        self.queue = QueueBook(self.instrument.size_increment.as_double())
        self.empty = OrderBook(self.instrument.id, BookType.L2_MBP)
        self.eps = self.instrument.size_increment.as_double() / 2

    def displayed(self, level: _Level) -> float:
        """The venue book's size on ``level``'s side at its price."""
        opposite = OrderSide.SELL if level.side == BUY else OrderSide.BUY  # Nautilus's convention
        size = self.book.get_quantity_at_level(
            level.price, opposite, self.instrument.size_precision
        )
        return size.as_double()


class QueueTracker(SimulationModule):
    """The queue position of every resting LIMIT order at its venue (a module of ``add_venue``).

    ``grants_unused`` counts fills the queue rule granted that the matching engine did not take
    (the order then goes to the front of its level with what it has left); ``late_trades``
    counts trades already shown by the book when they arrived that touched a tracked order;
    ``book_crosses`` counts the matching engine's fill attempts let through because the book
    crossed an order alone at its price.
    """

    def __init__(self) -> None:
        super().__init__(SimulationModuleConfig())
        self._queues: dict[Any, _Queues] = {}
        self._resting = 0
        self._dirty = self._granted = False
        self.grants_unused = 0
        self.late_trades = 0
        self.book_crosses = 0

    # -- Nautilus hooks ---------------------------------------------------------------------
    def register_venue(self, exchange: Any) -> None:
        super().register_venue(exchange)
        self.msgbus.subscribe("events.order.*", self._on_order_event)

    def pre_process(self, data: Any) -> None:
        """Before the matching engine sees ``data``: grant a trade's fills, follow snapshots."""
        if type(data) is OrderBookDelta:
            flags = int(data.flags)
            if flags & _SNAPSHOT_END:  # a message ends, or a snapshot goes on
                self._dirty = True
                if flags & F_SNAPSHOT or data.action == BookAction.CLEAR:
                    q = self._state(data.instrument_id)
                    q.frozen = flags & _SNAPSHOT_END != _SNAPSHOT_END
        elif type(data) is TradeTick:
            if self._resting:
                q = self._queues.get(data.instrument_id)
                if q is not None and q.orders:
                    self._trade(q, data)
                    self._granted = bool(q.grants)
        elif type(data) is OrderBookDeltas:
            for delta in data.deltas:
                self.pre_process(delta)

    def process(self, ts_now: int) -> None:
        """After each data item and the commands it released: settle grants, follow the book."""
        if not (self._resting and (self._dirty or self._granted)):
            return
        dirty, self._dirty, self._granted = self._dirty, False, False
        for q in self._queues.values():
            if q.grants:
                self._settle_unused(q)
            if dirty and not q.frozen and q.orders:
                self._follow_book(q)

    def log_diagnostics(self, logger: Any) -> None:
        logger.info(
            f"QueueTracker: {self._resting} resting, {self.grants_unused} unused grants, "
            f"{self.late_trades} late trades, {self.book_crosses} book crosses"
        )

    def reset(self) -> None:
        self._queues.clear()
        self._resting = 0
        self.grants_unused = self.late_trades = self.book_crosses = 0

    # -- what the fill model and tests ask --------------------------------------------------
    def maker_book(self, instrument: Any, order: Any) -> OrderBook | None:
        """A book holding exactly what the queue rule granted ``order`` on this trade (empty:
        nothing), or ``None`` for an order the tracker does not follow."""
        q = self._queues.get(order.instrument_id)
        if q is None or order.client_order_id not in q.orders:
            return None
        granted = q.grants.pop(order.client_order_id, 0.0)
        if granted <= 0.0:
            if self._alone_and_crossed(q, order):
                self.book_crosses += 1
                return None
            return q.empty
        qty = instrument.make_qty(min(granted, order.leaves_qty.as_double()))
        if qty.raw == 0:
            return q.empty
        book = OrderBook(instrument.id, BookType.L2_MBP)
        book.add(BookOrder(_OPPOSITE[order.side], order.price, qty, 1), 0, 0)
        return book

    def _alone_and_crossed(self, q: _Queues, order: Any) -> bool:
        """The book shows nobody at ``order``'s price and an opposite order at or through it:
        that order would have met ours first, with no trade on the tape."""
        i = order.client_order_id
        if q.frozen or i in q.unknown or q.displayed(q.orders[i].level) > 0.0:
            return False
        if order.side == OrderSide.BUY:
            best = q.book.best_ask_price()
            return best is not None and best <= order.price
        best = q.book.best_bid_price()
        return best is not None and best >= order.price

    def size_ahead(self, instrument_id: Any, client_order_id: Any) -> float | None:
        """The displayed size still ahead of a tracked order (``None``: not tracked)."""
        q = self._queues.get(instrument_id)
        order = None if q is None else q.queue.order(client_order_id)
        return None if order is None else order.ahead

    # -- market data ------------------------------------------------------------------------
    def _trade(self, q: _Queues, tick: TradeTick) -> None:
        """Grant ``tick``'s fills in exchange-time order (see the module docstring)."""
        ts, price = tick.ts_event, tick.price.as_double()
        aggressor = int(tick.aggressor_side)
        queue = q.queue
        held = [(i, queue.order(i)) for i, t in q.orders.items() if t.since >= ts and i in queue]
        for i, _ in held:  # joined a book already showing this trade: it was not there
            queue.cancel(i)
        level = q.levels.get((BUY if aggressor == SELLER else SELL, price))
        undone = False
        if level is not None and level.seen and level.seen[-1][0] > ts:
            for i in level.ids:
                tracked = q.orders[i]
                back = sum(size for t, size in tracked.cuts if t > ts)
                if back > 0 and i in queue:
                    queue.set_ahead(i, queue.size_ahead(i) + back)
                    tracked.cuts = []
                    undone = True
        for fill in queue.on_trade(price, tick.size.as_double(), aggressor):
            q.grants[fill.order_id] = q.grants.get(fill.order_id, 0.0) + fill.size
        if undone:
            assert level is not None
            self.late_trades += 1
            later = [(t, size) for t, size in level.seen if t > ts]
            self._shrink(q, level, later[-1][0], min(size for _, size in later))
        for i, order in held:
            assert order is not None
            queue.submit(i, order.side, order.price, order.remaining, order.ahead)
        for lv in q.levels.values():  # later trades are not earlier than this one
            lv.seen = [s for s in lv.seen if s[0] > ts]
        for t in q.orders.values():
            t.cuts = [c for c in t.cuts if c[0] > ts]

    def _follow_book(self, q: _Queues) -> None:
        """The book changed: the queue ahead of each tracked level shrinks to what it shows."""
        ts = q.book.ts_last
        for i in list(q.unknown):  # joined during a gap or snapshot: now the book is known
            q.unknown.discard(i)
            if i in q.queue:
                q.orders[i].since = ts
                q.queue.set_ahead(i, q.displayed(q.orders[i].level))
        for level in q.levels.values():
            shown = q.displayed(level)
            if shown != level.shown:
                level.shown = shown
                level.seen.append((ts, shown))
                self._shrink(q, level, ts, shown)

    def _shrink(self, q: _Queues, level: _Level, ts: int, shown: float) -> None:
        before = {i: q.queue.size_ahead(i) for i in level.ids if i in q.queue}
        q.queue.on_book_change(level.side, level.key, shown)
        for i, ahead in before.items():
            cut = ahead - q.queue.size_ahead(i)
            if cut > 0:
                q.orders[i].cuts.append((ts, cut))

    def _settle_unused(self, q: _Queues) -> None:
        for i in q.grants:
            order = self.cache.order(i)
            if order is not None and order.is_open and i in q.orders:
                self.grants_unused += 1
                self._rest(q, order, ahead=0.0)
        q.grants.clear()

    # -- order events -----------------------------------------------------------------------
    def _on_order_event(self, event: Any) -> None:
        if event.instrument_id.venue != self.exchange.id:
            return
        order = self.cache.order(event.client_order_id)
        if order is None or order.order_type != OrderType.LIMIT:
            return
        q = self._state(event.instrument_id)
        i = order.client_order_id
        if order.is_closed:
            self._untrack(q, i)
        elif isinstance(event, OrderAccepted):
            if i not in q.orders:
                self._track(q, order)
        elif i in q.orders and isinstance(event, OrderUpdated | OrderFilled):
            self._amend(q, order)
        self._resting = sum(len(s.orders) for s in self._queues.values())

    def _amend(self, q: _Queues, order: Any) -> None:
        """A fill or an amendment: a new price or a larger size goes to the back of the level;
        otherwise the order keeps its place with what it has left."""
        i = order.client_order_id
        rest = q.queue.order(i)
        leaves = order.leaves_qty.as_double()
        moved = order.price.as_double() != q.orders[i].level.key
        if moved or (rest is not None and leaves > rest.remaining + q.eps):
            self._untrack(q, i)
            self._track(q, order)
        elif rest is None or abs(rest.remaining - leaves) > q.eps:
            self._rest(q, order, ahead=0.0 if rest is None else rest.ahead)

    def _track(self, q: _Queues, order: Any) -> None:
        key = (int(order.side), order.price.as_double())
        level = q.levels.get(key)
        if level is None:
            level = q.levels[key] = _Level(key[0], key[1], order.price)
            level.shown = q.displayed(level)
        level.ids.append(order.client_order_id)
        q.orders[order.client_order_id] = _Tracked(level, q.book.ts_last)
        if q.frozen:
            q.unknown.add(order.client_order_id)
        self._rest(q, order, ahead=_UNKNOWN if q.frozen else q.displayed(level))

    def _rest(self, q: _Queues, order: Any, ahead: float) -> None:
        """(Re)place ``order``'s unfilled size in the queue book behind ``ahead``."""
        i = order.client_order_id
        level = q.orders[i].level
        q.queue.cancel(i)
        q.queue.submit(i, level.side, level.key, order.leaves_qty.as_double(), ahead)

    def _untrack(self, q: _Queues, i: Any) -> None:
        tracked = q.orders.pop(i, None)
        if tracked is None:
            return
        q.queue.cancel(i)
        q.unknown.discard(i)
        q.grants.pop(i, None)
        level = tracked.level
        level.ids.remove(i)
        if not level.ids:
            del q.levels[(level.side, level.key)]

    def _state(self, instrument_id: Any) -> _Queues:
        q = self._queues.get(instrument_id)
        if q is None:
            instrument = self.cache.instrument(instrument_id)
            book = self.exchange.get_book(instrument_id)
            q = self._queues[instrument_id] = _Queues(instrument, book)
        return q


class QueueFillModel(FillModel):
    """Fills resting (maker) LIMIT orders only by ``tracker``'s queue rule; takers (market
    orders, limits that cross on arrival) walk the venue's L2 book as Nautilus does."""

    def __init__(self, tracker: QueueTracker, random_seed: int | None = None) -> None:
        super().__init__(prob_fill_on_limit=1.0, prob_slippage=0.0, random_seed=random_seed)
        self.tracker = tracker

    def get_orderbook_for_fill_simulation(
        self, instrument: Any, order: Any, best_bid: Any, best_ask: Any
    ) -> OrderBook | None:
        if order.liquidity_side != LiquiditySide.MAKER:
            return None
        return self.tracker.maker_book(instrument, order)
