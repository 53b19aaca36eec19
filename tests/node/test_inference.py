"""The strategy's inference queue on a backtest clock: answers after the modelled latency, in
order, one in flight, late ones blocked (issue 13, Build 2: one path for backtest and live)."""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import numpy as np
import pytest
from nautilus_trader.common.component import TestClock

from node.inference import InferenceQueue
from serving.client import ClientResult
from serving.client import InProcessModelClient
from serving.testing import make_bundle

MS = 1_000_000


def advance(clock: TestClock, to_ns: int) -> None:
    """Run ``clock`` on to ``to_ns`` as Nautilus's backtest engine does: each alert's handler
    runs with the clock at the alert's time, and alerts set by a handler are run too."""
    while handlers := clock.advance_time(to_ns, set_time=False):
        for handler in handlers:
            clock.set_time(handler.event.ts_event)
            handler.handle()
    clock.set_time(to_ns)


class Sample(NamedTuple):
    ts_ns: int
    z: np.ndarray
    session: int


class Recording:
    """The real in-process client, recording the posterior each call was given."""

    def __init__(self) -> None:
        self.client = InProcessModelClient(make_bundle(3, n=300)[0])
        self.given: list[list[float] | None] = []

    def infer(self, z: Any, prev: Any, version: str) -> ClientResult:
        self.given.append(None if prev is None else list(prev))
        return self.client.infer(z, prev, version)


@pytest.fixture(scope="module")
def model() -> Recording:
    return Recording()


def run(model: Recording, times_ms: list[float], *, latency_ms: float, budget_ms: float,
        sessions: list[int] | None = None) -> tuple[InferenceQueue, list[tuple[Any, ...]]]:  # fmt: skip
    """Put one sample per entry of ``times_ms`` on a backtest clock, run the clock on, and
    return the queue and every ``(sample, result, answer_ms, clock ms)`` answered."""
    clock = TestClock()
    answered: list[tuple[Any, ...]] = []
    queue = InferenceQueue(
        model, model.client.schema.version, clock,
        lambda s, cr, ms: answered.append((s, cr, ms, clock.timestamp_ns() / MS)),
        budget_ms=budget_ms, modelled_latency_ms=latency_ms, log_error=pytest.fail,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for i, t in enumerate(times_ms):
        advance(clock, int(t * MS))
        session = 0 if sessions is None else sessions[i]
        queue.put(Sample(int(t * MS), rng.normal(size=10), session))
    advance(clock, int((times_ms[-1] + 100 * latency_ms + 1) * MS))
    return queue, answered


def test_an_answer_arrives_the_modelled_latency_after_its_sample(model: Recording) -> None:
    queue, answered = run(model, [0.0, 1000.0], latency_ms=5.0, budget_ms=50.0)
    assert [(a[0].ts_ns // MS, a[1].status, a[2], a[3]) for a in answered] == [
        (0, "ok", 5.0, 5.0),
        (1000, "ok", 5.0, 1005.0),
    ]
    assert answered[0][1].latency_ms > 0  # the call's own (measured) time is kept
    assert queue.not_asked == 0


def test_one_call_in_flight_answers_in_order_and_carries_the_posterior(model: Recording) -> None:
    model.given.clear()
    queue, answered = run(model, [0.0, 0.0, 0.0], latency_ms=2.0, budget_ms=50.0)
    assert [a[3] for a in answered] == [2.0, 4.0, 6.0]  # each waits for the one before
    assert [a[2] for a in answered] == [2.0, 4.0, 6.0]  # counted from the sample's arrival
    assert model.given[0] is None
    for (_, cr, *_), given in zip(answered[:-1], model.given[1:], strict=True):
        assert given == cr.result.log_posterior  # the filter runs on the previous answer
    assert queue.log_posterior == answered[-1][1].result.log_posterior


def test_late_answers_time_out_and_a_sample_that_waited_the_budget_is_not_asked(
    model: Recording,
) -> None:
    model.given.clear()
    queue, answered = run(model, [0.0, 0.0, 0.0], latency_ms=2.0, budget_ms=3.0)
    (_, ok, ms1, _), (_, late, ms2, _), (_, skipped, ms3, _) = answered
    assert (ok.status, ms1) == ("ok", 2.0)
    assert (late.status, ms2) == ("timeout", 4.0) and late.result is not None  # still a posterior
    assert (skipped.status, skipped.result, ms3) == ("timeout", None, 4.0)
    assert queue.not_asked == 1 and len(model.given) == 2  # never sent to the model


def test_a_new_feature_session_starts_a_new_filter(model: Recording) -> None:
    model.given.clear()
    run(model, [0.0, 1000.0, 2000.0], latency_ms=1.0, budget_ms=50.0, sessions=[0, 0, 1])
    assert model.given[0] is None and model.given[1] is not None and model.given[2] is None


def test_nothing_is_answered_after_close(model: Recording) -> None:
    clock = TestClock()
    answered: list[Any] = []
    queue = InferenceQueue(model, model.client.schema.version, clock,
                           lambda *a: answered.append(a), budget_ms=50.0,
                           modelled_latency_ms=5.0, log_error=pytest.fail)  # fmt: skip
    queue.put(Sample(0, np.zeros(10), 0))
    queue.put(Sample(0, np.zeros(10), 0))
    queue.close()
    advance(clock, 100 * MS)
    assert answered == [] and clock.timer_names == []


def test_the_answer_meets_the_book_of_its_arrival_not_the_samples() -> None:
    """The strategy decides against ``feed.top()``: the book with every message received up to
    the answer, queued ones included, while the sample keeps the book of its boundary."""
    from nautilus_trader.model.data import BookOrder
    from nautilus_trader.model.data import OrderBookDelta
    from nautilus_trader.model.data import OrderBookDeltas
    from nautilus_trader.model.enums import BookAction
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price
    from nautilus_trader.model.objects import Quantity

    from node.feature_actor import NautilusFeatureFeed
    from training.features import BookTop
    from training.features import schema_for

    iid = InstrumentId.from_str("BTCUSDT.BINANCE")

    def message(ts_ms: int, *levels: tuple[BookAction, OrderSide, float, float]) -> OrderBookDeltas:
        ts = ts_ms * MS
        return OrderBookDeltas(iid, [
            OrderBookDelta(iid, action, BookOrder(side, Price(px, 2), Quantity(q, 3), 0),
                           128 if i == len(levels) - 1 else 0, 0, ts, ts)
            for i, (action, side, px, q) in enumerate(levels)])  # fmt: skip

    add, delete, buy, sell = BookAction.ADD, BookAction.DELETE, OrderSide.BUY, OrderSide.SELL
    samples: list[Any] = []
    feed = NautilusFeatureFeed(schema_for("spot"), samples.append)
    feed.on_order_book_deltas(message(0, (add, buy, 100.0, 1.0), (add, sell, 100.02, 3.0)))
    feed.on_order_book_deltas(message(1500, (add, buy, 100.01, 2.0)))  # samples t = 1 s
    feed.on_order_book_deltas(message(1700, (add, sell, 100.03, 1.0), (delete, sell, 100.02, 3.0)))
    assert [(s.ts_ns // MS, s.best_bid, s.best_ask) for s in samples] == [(1000, 100.0, 100.02)]
    assert feed.top() == BookTop.of(100.01, 2.0, 100.03, 1.0)  # after 1.5 s and the queued 1.7 s
