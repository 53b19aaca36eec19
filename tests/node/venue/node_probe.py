"""Run a REAL Nautilus ``TradingNode`` (Binance data + exec clients) against a loopback venue.

A probe strategy subscribes quotes, trades, L2 deltas (and mark prices on USD-M), records book
checkpoints (sequence ``u`` and the top levels of the node's own book), checks every batch for a
crossed book, and once the book is built submits: a post-only buy at the bid and a post-only sell
at the ask (they rest), a post-only buy at the ask (must be rejected ``due_post_only``) and a
crossing limit buy (takes). A driver thread then drops the market sockets through the venue's
HTTP control endpoint and waits for the resync; it pauses the user stream, has the probe take
again (the fill's events are held) and drops the user stream (they are lost); once the adapter
has re-subscribed and reconciled it cancels what still rests, waits for the node's balances to
reach the venue's, and stops the node.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Any

import httpx
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.venue import binance_configs
from node.venue.adapter import dispose_node
from node.venue.adapter import trading_node
from node.venue.venue import VenueThread

TOP = 25


@dataclass(repr=False)
class ProbeLog:
    """Everything the probe saw, read by the tests after the node stopped."""

    batches: int = 0
    quotes: int = 0
    trades: int = 0
    marks: int = 0
    crossed: list[tuple[int, int]] = field(default_factory=list)  # (batch, sequence)
    snapshot_batches: list[int] = field(default_factory=list)
    checkpoints: list[tuple[int, list[tuple[float, float]], list[tuple[float, float]]]] = field(
        default_factory=list
    )
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    orders: dict[str, str] = field(default_factory=dict)  # role -> client order id
    balances: dict[str, str] = field(default_factory=dict)
    drop_at_batch: int = 0
    user_dropped_at_event: int = 0
    account_reads_before_gap: int = 0
    open_at_start: list[str] = field(default_factory=list)
    position_at_start: float = 0.0
    retries: int = 0
    checkpoint_batches: list[int] = field(default_factory=list)
    instrument: Any = None

    def __repr__(self) -> str:  # short, for assertion messages
        names = [(n, c[-2:]) for n, c, _ in self.events if n != "OrderInitialized"]
        return (
            f"ProbeLog(batches={self.batches}, snapshots={self.snapshot_batches}, "
            f"drop_at={self.drop_at_batch}, crossed={len(self.crossed)}, events={names})"
        )


class ProbeConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    usdm: bool = False
    checkpoint_every: int = 15
    orders_after: int = 15


class Probe(Strategy):
    def __init__(self, config: ProbeConfig, seen: ProbeLog) -> None:
        super().__init__(config)
        self.iid = config.instrument_id
        self.seen = seen
        self._last_snapshot = -1

    def on_start(self) -> None:
        self.seen.instrument = self.cache.instrument(self.iid)
        self.seen.open_at_start = [o.client_order_id.value for o in self.cache.orders_open()]
        self.seen.position_at_start = sum(
            p.signed_qty for p in self.cache.positions_open(instrument_id=self.iid)
        )
        self.subscribe_quote_ticks(self.iid)
        self.subscribe_trade_ticks(self.iid)
        self.subscribe_order_book_deltas(self.iid, book_type=BookType.L2_MBP)
        if self.config.usdm:
            self.subscribe_mark_prices(self.iid)

    def on_quote_tick(self, tick: Any) -> None:
        self.seen.quotes += 1

    def on_trade_tick(self, tick: Any) -> None:
        self.seen.trades += 1

    def on_mark_price(self, mark: Any) -> None:
        self.seen.marks += 1

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        log = self.seen
        log.batches += 1
        book: OrderBook = self.cache.order_book(self.iid)
        if deltas.deltas[0].action == BookAction.CLEAR:
            log.snapshot_batches.append(log.batches)
            self._last_snapshot = log.batches
        if self._last_snapshot < 0:
            return  # a diff the adapter applied before its first snapshot (no buffer yet)
        bid, ask = book.best_bid_price(), book.best_ask_price()
        if bid is not None and ask is not None and bid >= ask:
            log.crossed.append((log.batches, int(deltas.sequence)))
        since = log.batches - self._last_snapshot
        if since in (1, 2) or since % self.config.checkpoint_every == 0:
            log.checkpoints.append((int(deltas.sequence), _top(book.bids()), _top(book.asks())))
            log.checkpoint_batches.append(log.batches)
        if log.batches == self.config.orders_after and not log.orders:
            self._submit(book)

    def _submit(self, book: OrderBook) -> None:
        """Two post-only orders 2 ticks off the touch, a post-only buy 0.1 % through the ask
        (rejected), a crossing buy (takes)."""
        inst = self.cache.instrument(self.iid)
        bid, ask = book.best_bid_price().as_decimal(), book.best_ask_price().as_decimal()
        tick = inst.price_increment.as_decimal()
        self._place("rest_buy", OrderSide.BUY, bid - 2 * tick, post_only=True)
        self._place("rest_sell", OrderSide.SELL, ask + 2 * tick, post_only=True)
        self._place("reject", OrderSide.BUY, ask * Decimal("1.001"), post_only=True)
        self._place("take", OrderSide.BUY, ask * Decimal("1.0005"), post_only=False)

    def _place(self, role: str, side: OrderSide, price: Decimal, post_only: bool) -> None:
        inst = self.cache.instrument(self.iid)
        tick = inst.price_increment.as_decimal()
        on_tick = inst.make_price(float((price / tick).quantize(Decimal(1)) * tick))
        order = self.order_factory.limit(
            self.iid,
            side,
            inst.make_qty(0.001),
            on_tick,
            time_in_force=TimeInForce.GTC,
            post_only=post_only,
        )
        self.seen.orders[role] = order.client_order_id.value
        self.submit_order(order)

    def _retry_resting(self, event: Any) -> None:
        """A resting order the market crossed before it arrived (the node lags the venue when
        the machine is busy): place it again, further off, at most 3 times."""
        role = next(
            (r for r, c in self.seen.orders.items() if c == event.client_order_id.value), ""
        )
        if role not in ("rest_buy", "rest_sell") or self.seen.retries >= 6:
            return
        self.seen.retries += 1
        book: OrderBook = self.cache.order_book(self.iid)
        tick = self.cache.instrument(self.iid).price_increment.as_decimal()
        off = (2 + 5 * self.seen.retries) * tick
        if role == "rest_buy":
            self._place(role, OrderSide.BUY, book.best_bid_price().as_decimal() - off, True)
        else:
            self._place(role, OrderSide.SELL, book.best_ask_price().as_decimal() + off, True)

    def on_event(self, event: Any) -> None:
        name = type(event).__name__
        if not name.startswith("Order"):
            return
        info: dict[str, Any] = {}
        for attr in (
            "reconciliation",
            "due_post_only",
            "reason",
            "liquidity_side",
            "last_px",
            "last_qty",
            "commission",
        ):
            if hasattr(event, attr):
                info[attr] = getattr(event, attr)
        self.seen.events.append((name, event.client_order_id.value, info))
        if name == "OrderRejected" and event.due_post_only:
            self._retry_resting(event)

    def take_in_gap(self) -> None:
        """A crossing buy while the user stream is paused: only reconciliation can report it."""
        ask = self.cache.order_book(self.iid).best_ask_price().as_decimal()
        self._place("gap_take", OrderSide.BUY, ask * Decimal("1.0005"), post_only=False)

    def cancel_resting(self) -> None:
        self.cancel_all_orders(self.iid)

    def on_stop(self) -> None:
        self.record_balances()

    def record_balances(self) -> None:
        account = self.portfolio.account(self.iid.venue)
        if account is not None:
            self.seen.balances = {
                str(c): str(b.total.as_decimal()) for c, b in account.balances().items()
            }


def venue_balances(account: Any) -> dict[str, Decimal]:
    """The venue account's totals as the node's balances should show them: free + locked per
    asset (spot), the wallet (USD-M)."""
    if hasattr(account, "wallet"):
        return {account.asset: account.wallet}
    return {a: account.free[a] + account.locked.get(a, Decimal(0)) for a in account.free}


def _top(levels: list[Any]) -> list[tuple[float, float]]:
    return [(lv.price.as_double(), lv.size()) for lv in levels[:TOP]]


def run_probe(
    venue: VenueThread,
    market: str,
    api_key: str,
    api_secret: str,
    *,
    after_drop_batches: int = 60,
    fill_wait_s: float = 12.0,
    timeout_s: float = 90.0,
    drop: str = "all",
) -> tuple[ProbeLog, dict[str, Any]]:
    """Run the node until the scenario is done (or ``timeout_s``); returns the probe log and
    the venue status at the end."""
    data, exec_ = binance_configs(
        venue.urls, market, venue.venue.spec.symbol, api_key=api_key, api_secret=api_secret
    )
    iid = next(iter(data.instrument_provider.load_ids))
    log = ProbeLog()
    probe = Probe(ProbeConfig(instrument_id=iid, usdm=market == "usdm"), log)
    node = trading_node(data, exec_, [probe])
    loop = node.get_event_loop()
    assert loop is not None

    def filled(role: str) -> bool:
        cid = log.orders.get(role)
        return any(e[0] == "OrderFilled" and e[1] == cid for e in list(log.events))

    def driver() -> None:
        deadline = time.monotonic() + timeout_s

        def wait(cond: Any, until: float) -> bool:
            return _wait(cond, min(until, deadline))

        def settled() -> bool:
            seen = {(n, c) for n, c, _ in list(log.events)}
            return all(
                filled(r) or ("OrderCanceled", log.orders[r]) in seen
                for r in ("rest_buy", "rest_sell")
            )

        wait(lambda: filled("take"), deadline)
        wait(lambda: filled("rest_buy") or filled("rest_sell"), time.monotonic() + fill_wait_s)
        log.drop_at_batch = log.batches
        httpx.post(
            f"{venue.urls.http}/_venue/market/drop", params={"which": drop}, timeout=10
        ).raise_for_status()
        wait(
            lambda: (
                len(log.snapshot_batches) >= 2
                and log.batches - log.snapshot_batches[-1] >= after_drop_batches
            ),
            deadline,
        )
        # the user stream drops too, with a fill's events held in it: the adapter must log on
        # again and reconcile before the cancels come back
        log.user_dropped_at_event = len(log.events)
        log.account_reads_before_gap = venue.status()["account_reads"]
        control = f"{venue.urls.http}/_venue/user"
        httpx.post(f"{control}/pause", timeout=10).raise_for_status()
        fills = venue.status()["fills"]
        loop.call_soon_threadsafe(probe.take_in_gap)
        wait(lambda: venue.status()["fills"] > fills, deadline)
        httpx.post(f"{control}/drop", timeout=10).raise_for_status()
        wait(lambda: venue.status()["user_streams"] >= 1, deadline)
        loop.call_soon_threadsafe(probe.cancel_resting)
        wait(lambda: settled() and filled("gap_take"), deadline)
        # the account updates that follow (and the account the node reloaded after the gap)
        want = venue_balances(venue.call(lambda: venue.venue.account))

        def balanced() -> bool:
            loop.call_soon_threadsafe(probe.record_balances)
            time.sleep(0.1)
            return {c: Decimal(v) for c, v in log.balances.items()} == want

        wait(balanced, time.monotonic() + 10.0)
        loop.call_soon_threadsafe(node.stop)

    thread = threading.Thread(target=driver, name="probe-driver", daemon=True)
    thread.start()
    try:
        node.run()
    finally:
        thread.join(5)
        dispose_node(node)
    return log, venue.status()


def _wait(cond: Any, until: float) -> bool:
    while time.monotonic() < until:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
