"""Order handling: Binance validation, post-only, taker fills against the replayed book, resting
orders filled by replayed trades under the FIFO queue rule (:mod:`node.venue.queue`).

A taker order walks the displayed levels of the venue book up to its limit (each level one
fill at that level's price); what is left of a GTC/GTX/GTD limit order rests behind the size
displayed at its price when it arrives. Own fills never change the public book: the replay is
the market, and the market does not react to us. Every state change goes to the ``sink``
(user-stream events) in Binance's order: ``NEW``, then ``TRADE``s, then ``EXPIRED``/``CANCELED``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Mapping
from decimal import Decimal
from decimal import InvalidOperation
from typing import Protocol

from node.venue._accounts import FuturesAccount
from node.venue._accounts import SpotAccount
from node.venue._book import SymbolSpec
from node.venue._book import VenueBook
from node.venue._model import NO_SUCH_ORDER
from node.venue._model import POST_ONLY_FUTURES
from node.venue._model import POST_ONLY_SPOT
from node.venue._model import UNKNOWN_ORDER
from node.venue._model import ZERO
from node.venue._model import ApiError
from node.venue._model import Fill
from node.venue._model import Order
from node.venue.queue import BUY
from node.venue.queue import SELL
from node.venue.queue import QueueBook

_TYPES = {"spot": ("LIMIT", "LIMIT_MAKER", "MARKET"), "usdm": ("LIMIT", "MARKET")}
_TIFS = {"spot": ("GTC", "IOC", "FOK"), "usdm": ("GTC", "IOC", "FOK", "GTX", "GTD")}


class Sink(Protocol):
    def order_event(
        self, order: Order, x: str, fill: Fill | None = None, cancel_id: str = ""
    ) -> None: ...

    def account_event(self) -> None: ...


def _malformed(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _dec(params: Mapping[str, str], name: str, default: Decimal | None = None) -> Decimal:
    text = params.get(name)
    if not text:
        if default is not None:
            return default
        raise _malformed(name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _malformed(name) from None
    if not value.is_finite():
        raise _malformed(name)
    return value


class Matcher:
    """The venue's orders for one symbol, matched against the replayed book and trades."""

    def __init__(
        self,
        spec: SymbolSpec,
        book: VenueBook,
        account: SpotAccount | FuturesAccount,
        sink: Sink,
        clock: Callable[[], int],
    ) -> None:
        self.spec = spec
        self.book = book
        self.account = account
        self.sink = sink
        self.clock = clock
        self.queue = QueueBook(float(spec.step))
        self.orders: dict[int, Order] = {}
        self.fills: list[Fill] = []
        self._order_ids = itertools.count(4_000_000_001)
        self._trade_ids = itertools.count(900_000_001)
        self._auto_ids = itertools.count(1)
        self._gtd = False

    # -- queries ----------------------------------------------------------------------------
    def find(self, params: Mapping[str, str]) -> Order:
        """By ``orderId`` (wins) or ``origClientOrderId``; ``-2013`` if unknown."""
        order = self._lookup(params)
        if order is None:
            raise ApiError(*NO_SUCH_ORDER)
        return order

    def _lookup(self, params: Mapping[str, str]) -> Order | None:
        if params.get("orderId"):
            try:
                return self.orders.get(int(params["orderId"]))
            except ValueError:
                raise _malformed("orderId") from None
        client = params.get("origClientOrderId")
        if not client:
            raise _malformed("orderId")
        hits = [o for o in self.orders.values() if o.client_id == client]
        return next((o for o in reversed(hits) if o.is_open), hits[-1] if hits else None)

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def all_orders(self, limit: int = 500) -> list[Order]:
        return [o for o in self.orders.values() if o.qty > 0][-limit:]

    def trades(self, start: int | None, end: int | None, limit: int = 500) -> list[Fill]:
        out = [
            f
            for f in self.fills
            if (start is None or f.time_ms >= start) and (end is None or f.time_ms <= end)
        ]
        return out[-limit:]

    def mark(self) -> Decimal:
        mid = self.book.mid()
        return Decimal(self.spec.px(mid)) if mid is not None else ZERO

    # -- new orders -------------------------------------------------------------------------
    def place(self, params: Mapping[str, str]) -> Order:
        """``POST order``: validate, accept (``NEW``), take, rest or expire; or raise."""
        order, limit = self._parse(params)
        spec = self.spec
        if order.post_only and self._crosses(order.side, order.price):
            raise ApiError(*(POST_ONLY_SPOT if spec.market == "spot" else POST_ONLY_FUTURES))
        levels = self._levels(order, limit)
        if order.quote_qty > 0:
            order.qty = self._quote_fill_qty(levels, order.quote_qty)
            if order.qty <= 0:
                raise ApiError(
                    -2010, "Order book liquidity is less than LOT_SIZE filter minimum quantity."
                )
        if isinstance(self.account, SpotAccount):
            cost = order.price * order.qty if order.type != "MARKET" else self._cost(levels, order)
            self.account.check(order, cost)
        else:
            price = order.price if order.type != "MARKET" else self.mark()
            self.account.check(order, price, self.mark(), self.open_orders())
        self.orders[order.order_id] = order
        self._gtd |= order.good_till > 0
        self.account.on_new(order)
        self.sink.order_event(order, "NEW")
        if order.tif == "FOK" and sum((q for _, q in levels), ZERO) < order.qty:
            return self._finish(order, "EXPIRED")
        for price, size in levels:
            if order.remaining <= 0:
                break
            self._fill(order, price, min(order.remaining, size), maker=False, ts_ms=self.clock())
        if order.remaining <= 0:
            return order
        if order.type == "MARKET" or order.tif in ("IOC", "FOK"):
            return self._finish(order, "EXPIRED")
        ahead = self.book.size_at(order.side, float(order.price))
        self.queue.submit(
            order.order_id, order.side, float(order.price), float(order.remaining), ahead
        )
        if not levels:
            self.sink.account_event()
        return order

    def _parse(self, p: Mapping[str, str]) -> tuple[Order, float | None]:
        spec, market = self.spec, self.spec.market
        if p.get("symbol") != spec.symbol:
            raise ApiError(-1121, "Invalid symbol.")
        side = {"BUY": BUY, "SELL": SELL}.get(p.get("side", ""))
        if side is None:
            raise ApiError(-1117, "Invalid side.")
        kind = p.get("type", "")
        if kind not in _TYPES[market]:
            raise ApiError(-1116, "Invalid orderType.")
        tif = p.get("timeInForce") or "GTC"
        if kind == "LIMIT" and market == "spot" and not p.get("timeInForce"):
            raise _malformed("timeInForce")
        if tif not in _TIFS[market]:
            raise ApiError(-1115 if market == "spot" else -4000, "Invalid timeInForce.")
        quote_qty = _dec(p, "quoteOrderQty", ZERO) if market == "spot" else ZERO
        qty = _dec(p, "quantity", ZERO if quote_qty > 0 and kind == "MARKET" else None)
        price = _dec(p, "price") if kind != "MARKET" else ZERO
        client = p.get("newClientOrderId") or f"venue-{next(self._auto_ids)}"
        if any(o.client_id == client and o.is_open for o in self.orders.values()):
            raise ApiError(-2010, "Duplicate order sent.")
        self._check_filters(price, qty, kind)
        now = self.clock()
        order = Order(
            order_id=next(self._order_ids),
            client_id=client,
            side=side,
            type=kind,
            tif="GTC" if kind in ("MARKET", "LIMIT_MAKER") else tif,
            price=price,
            qty=qty,
            time_ms=now,
            update_ms=now,
            reduce_only=p.get("reduceOnly", "false").lower() == "true",
            good_till=int(p.get("goodTillDate") or 0) if tif == "GTD" else 0,
            quote_qty=quote_qty,
        )
        return order, float(price) if kind != "MARKET" else None

    def _check_filters(self, price: Decimal, qty: Decimal, kind: str) -> None:
        spec, spot = self.spec, self.spec.market == "spot"
        if kind != "MARKET" and (price <= 0 or price % spec.tick != 0):
            raise (
                ApiError(-1013, "Filter failure: PRICE_FILTER")
                if spot
                else ApiError(-4014, "Price not increased by tick size.")
            )
        if qty == 0 and kind == "MARKET":
            return  # spot quoteOrderQty
        if qty <= 0 or qty % spec.step != 0 or not spec.min_qty <= qty <= spec.max_qty:
            raise (
                ApiError(-1013, "Filter failure: LOT_SIZE")
                if spot
                else ApiError(-1111, "Precision is over the maximum defined for this asset.")
            )
        notional = qty * (price if kind != "MARKET" else self.mark())
        if notional < spec.min_notional:
            raise (
                ApiError(-1013, "Filter failure: NOTIONAL")
                if spot
                else ApiError(
                    -4164,
                    f"Order's notional must be no smaller than {spec.min_notional.normalize():f} "
                    "(unless you choose reduce only).",
                )
            )

    def _crosses(self, side: int, price: Decimal) -> bool:
        best = self.book.best(SELL if side == BUY else BUY)
        if best is None:
            return False
        return float(price) >= best if side == BUY else float(price) <= best

    def _levels(self, order: Order, limit: float | None) -> list[tuple[Decimal, Decimal]]:
        """The opposite levels a taker order would meet, as exact decimals."""
        if order.post_only or (
            order.type != "MARKET" and not self._crosses(order.side, order.price)
        ):
            return []
        spec = self.spec
        out: list[tuple[Decimal, Decimal]] = []
        need, budget = order.qty, order.quote_qty
        for p, q in self.book.walk(order.side, limit):
            price, size = Decimal(spec.px(p)), Decimal(spec.qty(q))
            out.append((price, size))
            need -= size
            budget -= price * size
            if (budget <= 0) if order.quote_qty > 0 else (need <= 0):
                break
        return out

    def _quote_fill_qty(self, levels: list[tuple[Decimal, Decimal]], budget: Decimal) -> Decimal:
        qty = ZERO
        for price, size in levels:
            take = min(size, (budget / price // self.spec.step) * self.spec.step)
            qty += take
            budget -= take * price
            if take < size:
                break
        return qty

    def _cost(self, levels: list[tuple[Decimal, Decimal]], order: Order) -> Decimal:
        cost, need = ZERO, order.qty
        for price, size in levels:
            take = min(need, size)
            cost += take * price
            need -= take
        return cost

    # -- fills and endings ------------------------------------------------------------------
    def _fill(self, order: Order, price: Decimal, qty: Decimal, maker: bool, ts_ms: int) -> None:
        commission, asset = self.account.commission(order, price, qty, maker)
        pnl = (
            self.account.realize(order.side, price, qty)
            if isinstance(self.account, FuturesAccount)
            else ZERO
        )
        fill = Fill(next(self._trade_ids), order, price, qty, commission, asset, maker, ts_ms, pnl)
        order.executed += qty
        order.quote += price * qty
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        order.update_ms = ts_ms
        self.fills.append(fill)
        self.account.on_fill(order, fill)
        self.sink.order_event(order, "TRADE", fill)
        self.sink.account_event()

    def _finish(self, order: Order, status: str, cancel_id: str = "") -> Order:
        self.queue.cancel(order.order_id)
        self.account.on_done(order)
        order.status = status
        order.update_ms = self.clock()
        self.sink.order_event(order, status, cancel_id=cancel_id)
        self.sink.account_event()
        return order

    def cancel(self, params: Mapping[str, str]) -> Order:
        """``DELETE order``; ``-2011`` unless the order is open."""
        order = self._lookup(params)
        if order is None or not order.is_open:
            raise ApiError(*UNKNOWN_ORDER)
        cancel_id = ""
        if self.spec.market == "spot":
            cancel_id = params.get("newClientOrderId") or f"cancel-{next(self._auto_ids)}"
        return self._finish(order, "CANCELED", cancel_id)

    def cancel_all(self) -> list[Order]:
        out = []
        for order in self.open_orders():
            cancel_id = f"cancel-{next(self._auto_ids)}" if self.spec.market == "spot" else ""
            out.append(self._finish(order, "CANCELED", cancel_id))
        return out

    def amend(self, params: Mapping[str, str]) -> Order:
        """USD-M ``PUT order``: new price/quantity for an open LIMIT order (``AMENDMENT``)."""
        order = self._lookup(params)
        if order is None or not order.is_open:
            raise ApiError(*UNKNOWN_ORDER)
        qty, price = _dec(params, "quantity"), _dec(params, "price")
        self._check_filters(price, qty, order.type)
        if qty <= order.executed:
            raise ApiError(-2010, "Quantity must be greater than the executed quantity.")
        if order.post_only and self._crosses(order.side, price):
            raise ApiError(*POST_ONLY_FUTURES)
        old = self.queue.order(order.order_id)
        keep = old is not None and price == order.price and qty <= order.qty
        ahead = old.ahead if keep and old else self.book.size_at(order.side, float(price))
        self.queue.cancel(order.order_id)
        order.price, order.qty, order.update_ms = price, qty, self.clock()
        self.sink.order_event(order, "AMENDMENT")
        levels = self._levels(order, float(price))
        for p, size in levels:
            if order.remaining <= 0:
                break
            self._fill(order, p, min(order.remaining, size), maker=False, ts_ms=self.clock())
        if order.remaining > 0:
            self.queue.submit(
                order.order_id, order.side, float(price), float(order.remaining), ahead
            )
        return order

    # -- market events ----------------------------------------------------------------------
    def on_level(self, side: int, price: float, size: float) -> None:
        self.queue.on_book_change(side, price, size)

    def on_trade(self, price: float, qty: float, aggressor: int, ts_ms: int) -> None:
        """A replayed public trade: fill resting orders by the queue rule (maker, limit price)."""
        for qf in self.queue.on_trade(price, qty, aggressor):
            order = self.orders[qf.order_id]  # type: ignore[index]
            size = (
                order.remaining
                if qf.remaining == 0
                else min(order.remaining, Decimal(self.spec.qty(qf.size)))
            )
            if size > 0:
                self._fill(order, order.price, size, maker=True, ts_ms=ts_ms)
            if order.remaining <= 0:
                self.queue.cancel(order.order_id)

    def on_clock(self, ts_ms: int) -> None:
        """Expire GTD orders whose ``goodTillDate`` has passed."""
        if not self._gtd:
            return
        for order in self.open_orders():
            if order.good_till and order.good_till <= ts_ms:
                self._finish(order, "EXPIRED")
