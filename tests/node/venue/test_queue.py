"""The FIFO queue rule (node/venue/queue.py): size ahead, trades at and through the price,
cancels ahead, several own orders at one level."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from node.venue.queue import BUY
from node.venue.queue import BUYER
from node.venue.queue import SELL
from node.venue.queue import SELLER
from node.venue.queue import QueueBook
from node.venue.queue import QueueFill


def test_trades_at_the_price_consume_the_size_ahead_first() -> None:
    q = QueueBook(size_step=0.001)
    q.submit(1, BUY, 100.0, size=0.5, size_ahead=2.0)
    assert q.on_trade(100.0, 1.2, SELLER) == []
    assert q.size_ahead(1) == pytest.approx(0.8)
    assert q.on_trade(100.0, 1.0, SELLER) == [QueueFill(1, 100.0, 0.2, 0.3)]
    assert q.size_ahead(1) == 0.0
    assert q.on_trade(100.0, 5.0, SELLER) == [QueueFill(1, 100.0, 0.3, 0.0)]
    assert 1 not in q and len(q) == 0


def test_only_the_aggressor_against_the_order_fills_it() -> None:
    q = QueueBook(size_step=0.001)
    q.submit("b", BUY, 100.0, size=1.0, size_ahead=0.0)
    q.submit("s", SELL, 101.0, size=1.0, size_ahead=0.0)
    assert q.on_trade(100.0, 3.0, BUYER) == []  # a buyer lifting at 100 never hits our bid
    assert q.on_trade(101.0, 3.0, SELLER) == []  # a seller at 101 never lifts our ask
    assert q.on_trade(101.0, 0.4, BUYER) == [QueueFill("s", 101.0, 0.4, 0.6)]
    assert q.on_trade(100.0, 0.4, SELLER) == [QueueFill("b", 100.0, 0.4, 0.6)]


def test_a_trade_through_the_price_sweeps_the_level() -> None:
    q = QueueBook(size_step=0.001)
    q.submit("b1", BUY, 100.0, size=1.0, size_ahead=50.0)
    q.submit("b2", BUY, 99.0, size=2.0, size_ahead=50.0)
    fills = q.on_trade(98.5, 0.001, SELLER)  # swept both levels, best price first
    assert fills == [QueueFill("b1", 100.0, 1.0, 0.0), QueueFill("b2", 99.0, 2.0, 0.0)]
    q.submit("s", SELL, 105.0, size=1.0, size_ahead=9.0)
    assert q.on_trade(105.5, 0.001, BUYER) == [QueueFill("s", 105.0, 1.0, 0.0)]


def test_cancels_ahead_shrink_the_queue_growth_does_not() -> None:
    q = QueueBook(size_step=0.001)
    q.submit(1, SELL, 100.0, size=1.0, size_ahead=3.0)
    q.on_book_change(SELL, 100.0, 5.0)  # others joined behind us
    assert q.size_ahead(1) == 3.0
    q.on_book_change(SELL, 100.0, 1.5)  # the level shrank below what was ahead: cancels ahead
    assert q.size_ahead(1) == 1.5
    q.on_book_change(SELL, 100.1, 0.0)  # another level: nothing
    q.on_book_change(BUY, 100.0, 0.0)  # the other side: nothing
    assert q.size_ahead(1) == 1.5
    q.on_book_change(SELL, 100.0, 0.0)  # level gone: we are first
    assert q.on_trade(100.0, 0.25, BUYER) == [QueueFill(1, 100.0, 0.25, 0.75)]


def test_own_orders_at_one_level_fill_in_submission_order() -> None:
    q = QueueBook(size_step=0.001)
    q.submit("first", BUY, 100.0, size=0.5, size_ahead=1.0)
    q.submit("second", BUY, 100.0, size=0.5, size_ahead=2.0)  # 1.0 more joined in between
    # 1.0 ahead of first, then first, then the 1.0 between, then second
    assert q.on_trade(100.0, 1.7, SELLER) == [QueueFill("first", 100.0, 0.5, 0.0)]
    assert q.size_ahead("second") == pytest.approx(0.8)
    assert q.on_trade(100.0, 1.0, SELLER) == [QueueFill("second", 100.0, 0.2, 0.3)]


def test_cancel_and_bad_input() -> None:
    q = QueueBook(size_step=0.001)
    q.submit(1, BUY, 100.0, size=0.5, size_ahead=0.0)
    assert q.cancel(1) == 0.5 and q.cancel(1) == 0.0
    assert q.on_trade(99.0, 1.0, SELLER) == []
    with pytest.raises(ValueError, match="side"):
        q.submit(2, 3, 100.0, size=1.0, size_ahead=0.0)
    q.submit(2, BUY, 100.0, size=1.0, size_ahead=0.0)
    with pytest.raises(ValueError, match="already resting"):
        q.submit(2, BUY, 100.0, size=1.0, size_ahead=0.0)
    with pytest.raises(ValueError, match="size"):
        q.submit(3, BUY, 100.0, size=0.0, size_ahead=0.0)
    with pytest.raises(ValueError, match="size_step"):
        QueueBook(size_step=-1)


@settings(max_examples=200, deadline=None)
@given(
    ahead=st.integers(0, 50),
    size=st.integers(1, 20),
    trades=st.lists(st.integers(1, 30), max_size=30),
)
def test_without_cancels_fills_equal_the_volume_beyond_the_queue(
    ahead: int, size: int, trades: list[int]
) -> None:
    """In lots of 0.001: the order gets exactly what trades at its price leave after the queue."""
    step = 0.001
    q = QueueBook(size_step=step)
    q.submit("o", BUY, 100.0, size=size * step, size_ahead=ahead * step)
    filled, volume = 0.0, 0
    for lots in trades:
        volume += lots
        for fill in q.on_trade(100.0, lots * step, SELLER):
            filled += fill.size
            assert fill.price == 100.0
    expected = min(size, max(0, volume - ahead)) * step
    assert filled == pytest.approx(expected, abs=1e-9)
    assert ("o" in q) == (volume - ahead < size)
