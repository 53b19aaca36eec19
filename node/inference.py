"""The strategy's model calls: samples in order, one call in flight, each answered within budget.

One path for backtests and live nodes. A sample waits its turn (the forward filter needs the
previous posterior), goes to the model with the last filtered log posterior, and is handed back
with the answer when the answer arrives, to be decided against the market of that moment:

- live (a real-time clock), a call over the network (Serve) is the client's ``ainfer``, a task on
  the node's event loop: a slow Serve holds nothing else up; the in-process model (no I/O, well
  under a millisecond) answers inline, since a task would wait behind every queued market event;
- in a backtest (Nautilus's ``TestClock``), the clock stands still while the model answers
  (``infer``) and a time alert delivers the answer ``modelled_latency_ms`` later (``None``: the
  measured call time), so the book, the fills and the orders of those milliseconds happen first,
  as they would live.

A sample's wait counts from its arrival on the strategy's clock: an answer later than
``budget_ms`` comes back with status ``timeout`` (it still carries the posterior), and a sample
that has already waited the whole budget is blocked without asking, so the queue drains when
the model is slow.
"""

from __future__ import annotations

import asyncio
import traceback
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from nautilus_trader.common.component import TestClock

from serving.client import ClientResult
from serving.client import InProcessModelClient
from serving.client import ModelClient

__all__ = ["Answered", "InferenceQueue"]

# (sample, the call's result, ms from the sample's arrival to its answer on the strategy's clock)
Answered = Callable[[Any, ClientResult, float], None]


class InferenceQueue:
    """Asks ``model`` for each sample ``put`` in order and calls ``on_answer(sample, result,
    answer_ms)``. ``clock`` is the strategy's (a ``TestClock`` means a backtest); ``log_error``
    gets a client bug's traceback (the sample is then answered with status ``error``)."""

    def __init__(
        self,
        model: ModelClient,
        schema_version: str,
        clock: Any,
        on_answer: Answered,
        *,
        budget_ms: float,
        modelled_latency_ms: float | None,
        log_error: Callable[[str], None],
    ) -> None:
        self.model = model
        self.schema_version = schema_version
        self.clock = clock
        self.on_answer = on_answer
        self.budget_ms = float(budget_ms)
        self.modelled_latency_ms = modelled_latency_ms
        self.log_error = log_error
        self.simulated = isinstance(clock, TestClock)
        self.inline = not self.simulated and isinstance(model, InProcessModelClient)
        self.log_posterior: list[float] | None = None
        self.not_asked = 0  # samples blocked because they had waited the whole budget
        self._session: int | None = None
        self._waiting: deque[tuple[Any, int]] = deque()  # (sample, arrival ns)
        self._busy = False
        self._call: asyncio.Future[ClientResult] | None = None
        self._alerts = 0
        self._alert: str | None = None
        self._closed = False

    def put(self, s: Any) -> None:
        """Queue sample ``s`` (it has ``z`` and ``session``) and ask if no call is out."""
        self._waiting.append((s, self.clock.timestamp_ns()))
        self._ask_next()

    def close(self) -> None:
        """Drop the waiting samples and the call in flight; nothing is answered after this."""
        self._closed = True
        self._waiting.clear()
        if self._call is not None:
            self._call.cancel()
        if self._alert is not None and self._alert in self.clock.timer_names:
            self.clock.cancel_timer(self._alert)

    def _ask_next(self) -> None:
        while not self._busy and self._waiting and not self._closed:
            s, t0 = self._waiting.popleft()
            waited_ms = (self.clock.timestamp_ns() - t0) / 1e6
            if waited_ms > self.budget_ms:
                self.not_asked += 1
                late = ClientResult(None, "timeout", 0.0, "not asked: earlier answers were late")
                self.on_answer(s, late, waited_ms)
                continue
            if s.session != self._session:  # a new feature session starts a new filter
                self._session, self.log_posterior = s.session, None
            if self.inline:
                self._deliver(s, t0, self.model.infer(s.z, self.log_posterior, self.schema_version))
                continue
            self._busy = True
            if self.simulated:
                self._ask_now(s, t0)
            else:
                call = asyncio.ensure_future(
                    self.model.ainfer(s.z, self.log_posterior, self.schema_version)
                )
                self._call = call
                call.add_done_callback(partial(self._called, s, t0))

    def _ask_now(self, s: Any, t0: int) -> None:
        """Backtest: answer now, deliver the answer after the modelled (or measured) latency."""
        cr = self.model.infer(s.z, self.log_posterior, self.schema_version)
        modelled = self.modelled_latency_ms
        delay_ns = max(1, round((cr.latency_ms if modelled is None else modelled) * 1e6))
        self._alerts += 1
        self._alert = f"nhmm-answer-{self._alerts}"
        self.clock.set_time_alert_ns(
            self._alert,
            self.clock.timestamp_ns() + delay_ns,
            lambda _event: self._answered(s, t0, cr),
        )

    def _called(self, s: Any, t0: int, call: asyncio.Future[ClientResult]) -> None:
        self._call = None
        if self._closed or call.cancelled():
            return
        exc = call.exception()
        if exc is not None:  # a client bug: logged with its traceback, the sample is blocked
            self.log_error("model client failed: " + "".join(traceback.format_exception(exc)))
            self._answered(s, t0, ClientResult(None, "error", 0.0, f"{type(exc).__name__}: {exc}"))
        else:
            self._answered(s, t0, call.result())

    def _answered(self, s: Any, t0: int, cr: ClientResult) -> None:
        self._busy, self._alert = False, None
        if self._closed:
            return
        self._deliver(s, t0, cr)
        self._ask_next()

    def _deliver(self, s: Any, t0: int, cr: ClientResult) -> None:
        answer_ms = (self.clock.timestamp_ns() - t0) / 1e6
        if cr.ok and answer_ms > self.budget_ms:
            cr = ClientResult(cr.result, "timeout", cr.latency_ms, "answered after the budget")
        if cr.result is not None:  # a late answer still carries the posterior
            self.log_posterior = cr.result.log_posterior
        self.on_answer(s, cr, answer_ms)
