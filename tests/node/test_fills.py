"""Queue-aware passive fills in the real Nautilus backtest venue (issue 12, build item 1).

Each scenario runs a real ``BacktestEngine`` built by :func:`node.engine.binance_engine` (L2_MBP
Binance venue, deltas batched per message) with :func:`node.fills.venue_fill_config`, on a book
built from deltas and a tape of trades; a scripted strategy submits orders at set times.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

from node.engine import binance_engine
from node.engine import symbol_day_data
from node.fills import FillOptions
from node.fills import PassiveProbe
from node.fills import PassiveProbeConfig
from node.fills import passive_fill_rate
from node.fills import venue_fill_config
from node.venue.queue import BUY
from node.venue.queue import SELLER
from node.venue.queue import QueueBook
from training.data.catalog import MarketCatalog
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.sources.binance_ws import import_ws
from training.errors import BadInputError

INSTRUMENT = TestInstrumentProvider.btcusdt_binance()
IID = INSTRUMENT.id
S = 1_000_000_000  # ns per second
BID, ASK = 60000.00, 60000.10
NAUTILUS = "nautilus"  # Nautilus 1.231's own queue_position option, to compare with


def _delta(t: float, action: BookAction, side: OrderSide, px: float, size: float, flags: int,
           ts_event: float | None = None) -> OrderBookDelta:  # fmt: skip
    order = BookOrder(side, INSTRUMENT.make_price(px), INSTRUMENT.make_qty(size), 0)
    return OrderBookDelta(IID, action, order, flags, 0, int((ts_event or t) * S), int(t * S))


def level(t: float, side: OrderSide, px: float, size: float, ts_event: float | None = None) -> Any:
    """One exchange message setting one level's size (0: the level is gone)."""
    action = BookAction.DELETE if size == 0 else BookAction.UPDATE
    return _delta(t, action, side, px, size, F_LAST, ts_event)


def snapshot(t: float, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> list:
    rows = [_delta(t, BookAction.CLEAR, OrderSide.NO_ORDER_SIDE, 0, 0, F_SNAPSHOT)]
    rows += [_delta(t, BookAction.ADD, OrderSide.BUY, p, q, F_SNAPSHOT) for p, q in bids]
    rows += [_delta(t, BookAction.ADD, OrderSide.SELL, p, q, F_SNAPSHOT) for p, q in asks]
    rows[-1] = _delta(t, BookAction.ADD, OrderSide.SELL, *asks[-1], F_SNAPSHOT | F_LAST)
    return rows


_trade_ids = iter(range(1, 10**9))


def trade(t: float, px: float, size: float, seller: bool = True, ts_event: float | None = None):
    side = AggressorSide.SELLER if seller else AggressorSide.BUYER
    return TradeTick(IID, INSTRUMENT.make_price(px), INSTRUMENT.make_qty(size), side,
                     TradeId(str(next(_trade_ids))), int((ts_event or t) * S), int(t * S))  # fmt: skip


class Script(Strategy):
    """Runs ``actions`` (``(seconds, fn(strategy))``) at their times; ``seen[t]`` keeps what
    each returned; ``tracker`` is the venue's queue tracker (``None`` for other fill models)."""

    def __init__(self, actions: list[tuple[float, Callable[[Script], Any]]], tracker: Any) -> None:
        super().__init__()
        self.actions, self.tracker = actions, tracker
        self.seen: dict[float, Any] = {}
        self.ids: list[Any] = []

    def on_start(self) -> None:
        for n, (t, _) in enumerate(self.actions):
            self.clock.set_time_alert_ns(f"a{n}", int(t * S), self._fire)

    def _fire(self, event: Any) -> None:
        t, fn = self.actions[int(event.name[1:])]
        self.seen[t] = fn(self)

    def limit(self, side: OrderSide, px: float, qty: float = 0.1) -> None:
        order = self.order_factory.limit(
            IID, side, INSTRUMENT.make_qty(qty), INSTRUMENT.make_price(px), post_only=True
        )
        self.ids.append(order.client_order_id)
        self.submit_order(order)

    def market(self, side: OrderSide, qty: float) -> None:
        self.submit_order(self.order_factory.market(IID, side, INSTRUMENT.make_qty(qty)))

    def ioc(self, side: OrderSide, px: float, qty: float) -> None:
        """An IOC limit, as the strategy's KILL/STOP exits send (a slippage cap at ``px``)."""
        order = self.order_factory.limit(IID, side, INSTRUMENT.make_qty(qty),
                                         INSTRUMENT.make_price(px), time_in_force=TimeInForce.IOC)  # fmt: skip
        self.submit_order(order)

    def ahead(self, n: int = 0) -> float | None:
        return self.tracker.size_ahead(IID, self.ids[n])


def buy_at(px: float, qty: float = 0.1) -> Callable[[Script], None]:
    return lambda s: s.limit(OrderSide.BUY, px, qty)


def ahead(s: Script) -> float | None:
    return s.ahead()


def venue(model: str) -> dict[str, Any]:
    if model == NAUTILUS:
        return {"fill_model": FillModel(random_seed=1), "queue_position": True,
                "liquidity_consumption": True}  # fmt: skip
    return venue_fill_config(FillOptions(model))  # type: ignore[arg-type]


def run(model: str, data: list, actions: list, strategy: Strategy | None = None) -> dict:
    """Run ``actions`` (or ``strategy``) on ``data`` at a fresh venue; returns the fills and
    orders reports and the strategy."""
    kwargs = venue(model)
    engine = binance_engine(
        INSTRUMENT, "spot", trader_id="FILLS-001", starting_quote=1e7, starting_base=100.0,
        **kwargs,
    )  # fmt: skip
    engine.add_data(data)
    strategy = strategy or Script(actions, (kwargs.get("modules") or [None])[0])
    engine.add_strategy(strategy)
    engine.run()
    out = {
        "fills": engine.trader.generate_fills_report(),
        "orders": engine.trader.generate_orders_report(),
        "strategy": strategy,
    }
    engine.dispose()
    return out


def fills_at(result: dict) -> list[tuple[float, float, float]]:
    """``(seconds, qty, price)`` of every fill, in order."""
    f = result["fills"]
    if len(f) == 0:
        return []
    rows = zip(f["ts_event"], f["last_qty"], f["last_px"], strict=True)
    return [(pd.Timestamp(ts).value / S, float(q), float(p)) for ts, q, p in rows]


BOOK = snapshot(1.0, bids=[(BID, 5.0), (59999.90, 3.0)], asks=[(ASK, 5.0), (60000.20, 3.0)])
END = level(30.0, OrderSide.SELL, 60000.30, 1.0)  # the tape runs to t=30


def test_resting_bid_fills_only_after_the_size_ahead_has_traded() -> None:
    """Issue 12: behind 5 BTC displayed, a 0.1 BTC sell at the price does not fill the bid;
    after 5 BTC more trade there it is filled (maker, at its price). The old model filled it
    on the first trade."""
    data = [*BOOK, trade(3.0, BID, 0.1), trade(5.0, BID, 5.0), END]
    result = run("queue", data, [(2.0, buy_at(BID)), (4.0, ahead)])
    assert result["strategy"].seen[4.0] == pytest.approx(4.9)  # the 0.1 ate 0.1 of the 5 ahead
    assert fills_at(result) == [(5.0, 0.1, BID)]
    orders = result["orders"]
    assert orders["status"].tolist() == ["FILLED"]
    assert orders["liquidity_side"].tolist() == ["MAKER"]
    old = run("touch", data, [(2.0, buy_at(BID))])
    assert fills_at(old) == [(3.0, 0.1, BID)]


def test_volume_beyond_the_queue_fills_partially_in_order() -> None:
    """Only what trades beyond the size ahead fills: 5.05 at the price fills 0.05 of 0.1."""
    data = [*BOOK, trade(3.0, BID, 5.05), trade(4.0, BID, 0.02), trade(5.0, BID, 1.0), END]
    result = run("queue", data, [(2.0, buy_at(BID))])
    assert fills_at(result) == [(3.0, 0.05, BID), (4.0, 0.02, BID), (5.0, 0.03, BID)]


def test_cancels_ahead_shrink_the_queue_and_joins_behind_do_not() -> None:
    """The level drops to 1 BTC (cancels ahead), then grows to 3 (joins behind): 1.05 BTC
    traded fills 0.05; Nautilus's own ``queue_position`` keeps all 5 ahead."""
    data = [
        *BOOK,
        level(3.0, OrderSide.BUY, BID, 1.0),
        level(3.5, OrderSide.BUY, BID, 3.0),
        trade(4.0, BID, 1.05),
        trade(6.0, BID, 0.5),
        END,
    ]
    actions = [(2.0, buy_at(BID)), (3.2, ahead), (3.7, ahead)]
    result = run("queue", data, actions)
    assert [result["strategy"].seen[t] for t in (3.2, 3.7)] == [1.0, 1.0]
    assert fills_at(result) == [(4.0, 0.05, BID), (6.0, 0.05, BID)]
    assert fills_at(run(NAUTILUS, data, actions[:1])) == []  # 1.55 traded < 5 ahead


def test_a_trade_through_the_price_fills_the_whole_order() -> None:
    """A sell below the bid swept its level: the order fills at its limit, whatever was ahead
    (Nautilus's ``queue_position`` waits while size is still ahead)."""
    data = [*BOOK, trade(3.0, 59999.90, 0.01), END]
    result = run("queue", data, [(2.0, buy_at(BID))])
    assert fills_at(result) == [(3.0, 0.1, BID)]
    assert result["orders"]["liquidity_side"].tolist() == ["MAKER"]
    assert fills_at(run(NAUTILUS, data, [(2.0, buy_at(BID))])) == []


def test_an_order_alone_at_its_price_fills_when_the_other_side_reaches_it() -> None:
    """The bid level empties (the bid is alone there), then an ask of 0.05 is shown at the
    bid's price: it would have met the bid, so 0.05 fills at the bid's price, once (not again
    at the next book change); an ask below the bid fills the rest, still at the bid's price.
    While others still show at the price, a crossing ask fills nothing."""
    alone = [*BOOK, level(3.0, OrderSide.BUY, BID, 0.0), level(4.0, OrderSide.SELL, BID, 0.05),
             level(4.5, OrderSide.SELL, 60000.30, 2.0), level(5.0, OrderSide.SELL, 59999.95, 1.0),
             END]  # fmt: skip
    result = run("queue", alone, [(2.0, buy_at(BID))])
    assert fills_at(result) == [(4.0, 0.05, BID), (5.0, 0.05, BID)]
    assert result["orders"]["liquidity_side"].tolist() == ["MAKER"]
    assert result["strategy"].tracker.book_crosses >= 2
    shown = [*BOOK, level(3.0, OrderSide.BUY, BID, 2.0), level(4.0, OrderSide.SELL, BID, 0.05),
             END]  # fmt: skip
    assert fills_at(run("queue", shown, [(2.0, buy_at(BID))])) == []


def test_own_orders_at_one_level_fill_in_submission_order() -> None:
    """Two bids at the same price: the first joined behind 5, the second behind 7 (2 joined in
    between); 5.1 traded fills the first only, 2 more reach the second."""
    data = [
        *BOOK,
        level(2.5, OrderSide.BUY, BID, 7.0),
        trade(4.0, BID, 5.1),
        trade(5.0, BID, 2.05),
        END,
    ]
    result = run("queue", data, [(2.0, buy_at(BID)), (3.0, buy_at(BID))])
    ids = result["strategy"].ids
    f = result["fills"]
    assert f.index.tolist() == [str(ids[0]), str(ids[1])]
    assert fills_at(result) == [(4.0, 0.1, BID), (5.0, 0.05, BID)]


def test_taker_walks_the_book_and_consumes_displayed_liquidity() -> None:
    """A market buy of 6 takes 5 at the best ask and 1 at the next level; a second buy before
    the book updates finds those 6 gone (the old model filled it at the best ask again)."""
    data = [*BOOK, END]
    actions = [(2.0, lambda s: s.market(OrderSide.BUY, 6.0)),
               (2.0, lambda s: s.market(OrderSide.BUY, 1.0))]  # fmt: skip
    result = run("queue", data, actions)
    assert fills_at(result) == [(2.0, 5.0, ASK), (2.0, 1.0, 60000.20), (2.0, 1.0, 60000.20)]
    assert set(result["fills"]["liquidity_side"]) == {"TAKER"}
    old = run("touch", data, actions)
    assert fills_at(old)[-1] == (2.0, 1.0, ASK)


def test_an_ioc_exit_walks_the_book_up_to_its_cap_and_the_rest_is_cancelled() -> None:
    """The KILL/STOP exit: an IOC sell of 9 capped at the second bid takes 5 at the best bid and
    3 at the next level (displayed liquidity), never below the cap; the last 1 is cancelled."""
    data = [*BOOK, END]
    result = run("queue", data, [(2.0, lambda s: s.ioc(OrderSide.SELL, 59999.90, 9.0))])
    assert fills_at(result) == [(2.0, 5.0, BID), (2.0, 3.0, 59999.90)]
    assert set(result["fills"]["liquidity_side"]) == {"TAKER"}
    assert result["orders"]["status"].tolist() == ["CANCELED"]


def test_a_trade_the_book_already_showed_is_not_counted_twice() -> None:
    """Receive order is not exchange order: the depth update that shows a 2 BTC sale (level
    5 -> 3) arrives before the trade itself. The queue ends 3 ahead, not 1."""
    data = [
        *BOOK,
        level(3.0, OrderSide.BUY, BID, 3.0, ts_event=3.0),
        trade(3.1, BID, 2.0, ts_event=2.9),
        trade(4.0, BID, 3.0),
        trade(5.0, BID, 0.1),
        END,
    ]
    result = run("queue", data, [(2.0, buy_at(BID)), (3.5, ahead)])
    assert result["strategy"].seen[3.5] == pytest.approx(3.0)
    assert fills_at(result) == [(5.0, 0.1, BID)]
    assert result["strategy"].tracker.late_trades == 1


def test_an_order_ignores_trades_its_book_already_showed() -> None:
    """The book at submission (exchange time 2.5) already shows a trade stamped 2.4 that
    arrives later: it was not behind that trade."""
    data = [
        *BOOK,
        level(1.9, OrderSide.BUY, 59999.80, 1.0, ts_event=2.5),
        trade(2.1, BID, 1.0, ts_event=2.4),
        END,
    ]
    result = run("queue", data, [(2.0, buy_at(BID)), (2.2, ahead)])
    assert result["strategy"].seen[2.2] == 5.0


def test_a_gap_freezes_the_queue_until_the_next_snapshot() -> None:
    """A lone CLEAR (book gap) does not put the order first; the next snapshot shows 2 BTC at
    the price, so the queue shrinks to 2 (Nautilus's ``queue_position`` resets it to 0 at the
    CLEAR and fills on the next trade)."""
    gap = _delta(3.0, BookAction.CLEAR, OrderSide.NO_ORDER_SIDE, 0, 0, F_LAST)
    data = [
        *BOOK,
        trade(2.5, BID, 0.5),
        gap,
        trade(3.5, BID, 0.5),
        *snapshot(4.0, bids=[(BID, 2.0)], asks=[(ASK, 1.0)]),
        trade(5.0, BID, 2.05),
        END,
    ]
    actions = [(2.0, buy_at(BID)), (3.2, ahead), (4.5, ahead)]
    result = run("queue", data, actions)
    assert [result["strategy"].seen[t] for t in (3.2, 4.5)] == [pytest.approx(4.5), 2.0]
    assert fills_at(result) == [(5.0, 0.05, BID)]
    assert fills_at(run(NAUTILUS, data, actions[:1])) == [(3.5, 0.1, BID)]  # first after the gap


def test_a_new_price_goes_to_the_back_of_its_level() -> None:
    """Modifying the bid to 59999.90 puts it behind the 3 BTC shown there."""
    data = [*BOOK, trade(3.0, BID, 0.5), trade(5.0, 59999.90, 3.05), END]

    def move(s: Script) -> None:
        order = s.cache.order(s.ids[0])
        s.modify_order(order, price=INSTRUMENT.make_price(59999.90))

    result = run("queue", data, [(2.0, buy_at(BID)), (4.0, move), (4.5, ahead)])
    assert result["strategy"].seen[4.5] == 3.0
    assert fills_at(result) == [(5.0, 0.05, 59999.90)]


def test_fill_options_refuse_an_unknown_model() -> None:
    with pytest.raises(BadInputError, match="fill_model") as err:
        FillOptions(model="optimistic")  # type: ignore[arg-type]
    assert err.value.field == "fill_model"


def test_queue_book_set_ahead_corrects_the_queue() -> None:
    q = QueueBook(size_step=0.001)
    q.submit("a", BUY, 100.0, size=1.0, size_ahead=1.0)
    q.set_ahead("a", 3.0)
    assert q.on_trade(100.0, 3.5, SELLER)[0].size == 0.5
    q.set_ahead("a", -1.0)
    assert q.size_ahead("a") == 0.0


@pytest.fixture(scope="module")
def real_day(ws_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Real Binance spot BTCUSDT, 2024-08-08 23:54-24:00 (snapshot + depth diffs + trades)."""
    root = tmp_path_factory.mktemp("fills_catalog")
    import_ws([ws_dir / "spot_btcusdt_20240808.gz"], root)
    catalog = MarketCatalog(root)
    sd = catalog.symbol_days("BTCUSDT")[0]  # (the recording's last second is on 2024-08-09)
    assert catalog.instrument(sd.instrument_id).id == IID
    return [item for items in symbol_day_data(catalog, sd) for item in items]


def test_real_day_passive_fill_rate_is_lower_with_the_queue(real_day: list) -> None:
    """On six real minutes, the same quoting strategy (post 0.001 BTC at the touch, one order at
    a time, cancel after 5 s) fills far less of what it posts once it waits in the queue (measured: 0.45 vs 0.92 of the quantity); every queue fill is a
    maker fill at the order's own price."""
    rates = {}
    for model in ("touch", "queue"):
        probe = PassiveProbe(PassiveProbeConfig(instrument_id=IID, size=0.001, ttl_s=5.0))
        result = run(model, real_day, [], strategy=probe)
        rates[model] = passive_fill_rate(result["orders"])
    touch, queue = rates["touch"], rates["queue"]
    assert queue["passive_orders"] > 50 and touch["passive_orders"] > 50
    assert 0.0 < queue["passive_fill_rate"] < touch["passive_fill_rate"] - 0.2
    assert queue["passive_orders_filled"] / queue["passive_orders"] < 0.7
    fills, orders = result["fills"], result["orders"]
    assert set(fills["liquidity_side"]) == {"MAKER"}
    limit = orders.loc[fills.index, "price"].astype(float).to_numpy()
    assert (fills["last_px"].astype(float).to_numpy() == limit).all()
