"""FIFO queue position of resting limit orders on an L2 (price-level) book: the one queue rule.

An L2 feed shows how much rests at each price, not who is where. A resting order joins the back
of its level, so the displayed size there when it arrives is *ahead* of it. Then:

* a trade **at** the order's price first consumes the size ahead, then fills the order; several
  own orders at one level fill in submission order (each keeps its own size ahead);
* a trade **through** the price (a sell below a resting buy, a buy above a resting sell) fills
  the order completely: that level was swept;
* a drop of the displayed size at the level below the size ahead can only be cancels ahead:
  the size ahead shrinks to the displayed size. Growth joins behind and changes nothing.

Resting orders fill only on trades (never because a level appears across them), and own fills
do not change the public feed. Pure Python, no I/O and no Nautilus: the loopback venue matches
with it and a queue-aware backtest fill model can reuse it. Sides and aggressors use the
Nautilus codes (``BUY``/``SELL`` = 1/2, ``BUYER``/``SELLER`` = 1/2,
:mod:`training.data.columns`); sizes are floats, ``size_step`` sets the rounding slack.

>>> q = QueueBook(size_step=0.001)
>>> q.submit("a", BUY, 100.0, size=1.0, size_ahead=2.0)
>>> q.on_trade(100.0, 1.5, SELLER)             # eats 1.5 of the 2.0 ahead
[]
>>> q.on_book_change(BUY, 100.0, 0.2)           # the level shows 0.2: cancels ahead
>>> q.size_ahead("a")
0.2
>>> q.on_trade(100.0, 0.7, SELLER)              # 0.2 ahead, then 0.5 for us
[QueueFill(order_id='a', price=100.0, size=0.5, remaining=0.5)]
>>> q.on_trade(99.5, 0.01, SELLER)              # a trade through our price: swept
[QueueFill(order_id='a', price=100.0, size=0.5, remaining=0.0)]
>>> len(q)
0
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Iterator
from dataclasses import dataclass

from training.data.columns import BUY
from training.data.columns import BUYER
from training.data.columns import SELL
from training.data.columns import SELLER

__all__ = ["BUY", "BUYER", "SELL", "SELLER", "QueueBook", "QueueFill", "QueueOrder"]


@dataclass(frozen=True, slots=True)
class QueueFill:
    """``size`` of ``order_id`` filled at its limit ``price``; ``remaining`` is what is left."""

    order_id: Hashable
    price: float
    size: float
    remaining: float


@dataclass(slots=True)
class QueueOrder:
    """One resting order: its level, what is left, and the displayed size ahead of it."""

    order_id: Hashable
    side: int
    price: float
    remaining: float
    ahead: float


class QueueBook:
    """Resting orders per (side, price) level, filled by trades under the FIFO queue rule."""

    def __init__(self, size_step: float = 0.0) -> None:
        if size_step < 0:
            raise ValueError(f"size_step must be >= 0, got {size_step}")
        self._step = size_step
        self._eps = size_step * 1e-6 if size_step else 1e-12
        self._levels: dict[tuple[int, float], list[QueueOrder]] = {}
        self._orders: dict[Hashable, QueueOrder] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __iter__(self) -> Iterator[QueueOrder]:
        return iter(list(self._orders.values()))

    def submit(
        self, order_id: Hashable, side: int, price: float, size: float, size_ahead: float
    ) -> None:
        """Rest ``size`` at ``price`` behind ``size_ahead`` (the displayed size there now)."""
        if side not in (BUY, SELL):
            raise ValueError(f"side must be BUY (1) or SELL (2), got {side!r}")
        if order_id in self._orders:
            raise ValueError(f"order {order_id!r} is already resting")
        if size <= self._eps:
            raise ValueError(f"size must be > 0, got {size}")
        order = QueueOrder(order_id, side, price, size, max(0.0, size_ahead))
        self._orders[order_id] = order
        self._levels.setdefault((side, price), []).append(order)

    def cancel(self, order_id: Hashable) -> float:
        """Remove the order; returns its unfilled size (0.0 if it is not resting)."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return 0.0
        self._drop(order)
        return order.remaining

    def size_ahead(self, order_id: Hashable) -> float:
        return self._orders[order_id].ahead

    def set_ahead(self, order_id: Hashable, size_ahead: float) -> None:
        """Put ``order_id`` behind ``size_ahead`` again: a caller's correction, e.g. a trade
        reported after the book change that already showed it."""
        self._orders[order_id].ahead = max(0.0, size_ahead)

    def order(self, order_id: Hashable) -> QueueOrder | None:
        return self._orders.get(order_id)

    def on_book_change(self, side: int, price: float, size: float) -> None:
        """The displayed size at (``side``, ``price``) is now ``size`` (0 = level gone)."""
        level = self._levels.get((side, price))
        if level:
            for order in level:
                if order.ahead > size:
                    order.ahead = size

    def on_trade(self, price: float, size: float, aggressor: int) -> list[QueueFill]:
        """A public trade of ``size`` at ``price``; returns the fills of resting orders."""
        if aggressor == SELLER:
            side, through = BUY, [p for s, p in self._levels if s == BUY and p > price]
        elif aggressor == BUYER:
            side, through = SELL, [p for s, p in self._levels if s == SELL and p < price]
        else:
            return []
        fills: list[QueueFill] = []
        for p in sorted(through, reverse=side == BUY):
            for order in list(self._levels.get((side, p), ())):
                fills.append(self._fill(order, order.remaining))
        level = self._levels.get((side, price))
        if level:
            fills.extend(self._queue_fills(list(level), size))
        return fills

    def _queue_fills(self, level: list[QueueOrder], volume: float) -> list[QueueFill]:
        fills: list[QueueFill] = []
        eaten = 0.0  # public size ahead consumed by this trade
        for order in level:
            need = max(0.0, order.ahead - eaten)
            take = min(volume, need)
            volume -= take
            eaten += take
            if volume <= self._eps:
                break
            fill = min(volume, order.remaining)
            volume -= fill
            if self._snap(fill) > self._eps:
                fills.append(self._fill(order, fill))
        for order in level:
            if order.order_id in self._orders:
                order.ahead = max(0.0, order.ahead - eaten)
        return fills

    def _snap(self, size: float) -> float:
        """``size`` on the ``size_step`` grid (float noise from subtractions removed)."""
        step = self._step
        return round(round(size / step) * step, 12) if step else size

    def _fill(self, order: QueueOrder, size: float) -> QueueFill:
        size = self._snap(size)
        left = self._snap(order.remaining - size)
        if left <= self._eps:
            size, left = order.remaining, 0.0
        order.remaining = left
        if left == 0.0:
            del self._orders[order.order_id]
            self._drop(order)
        return QueueFill(order.order_id, order.price, size, left)

    def _drop(self, order: QueueOrder) -> None:
        key = (order.side, order.price)
        level = self._levels.get(key)
        if level is not None:
            level.remove(order)
            if not level:
                del self._levels[key]
