"""The live node's strategy: the regime strategy asking the model without blocking the event loop.

:class:`~node.strategy.PolicyHMMStrategy` asks its model client synchronously, which a backtest
wants (the clock stands still while the model answers; its latency is modelled). Live, a call to
Serve would hold the node's event loop for the round trip: market data, order events and the
book guard would wait behind it. :class:`AsyncInferenceStrategy` sends each ready sample with
the client's ``ainfer`` (a task on the node's loop) and decides when the answer arrives, with the
position and equity of that moment; the decision code is the strategy's own
(:meth:`~node.strategy.PolicyHMMStrategy._on_answer`).

Samples are answered in order, one call in flight (the forward filter needs the previous
posterior). A sample that arrives while a call is out waits its turn; its latency is counted
from its arrival, so one that cannot be answered within ``latency_budget_ms`` is a LATENCY block
(``timeout``: a late answer still carries the posterior), and one that has already waited the
whole budget is blocked without asking (the queue drains when Serve is slow). Samples without
ready features get the risk rules at once: they never wait for an answer. With answers inside
the budget the decisions are the synchronous strategy's, sample for sample.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import traceback
from collections import deque
from functools import partial
from typing import Any

from node.strategy import PolicyHMMStrategy
from serving.client import ClientResult

__all__ = ["AsyncInferenceStrategy"]


class AsyncInferenceStrategy(PolicyHMMStrategy):
    """:class:`~node.strategy.PolicyHMMStrategy` with inference off the event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: deque[tuple[Any, float]] = deque()  # (sample, arrival monotonic s)
        self._call: asyncio.Future[ClientResult] | None = None
        self._asked_session: int | None = None
        self._stopped = False
        self.not_asked = 0  # samples blocked because they had waited the whole budget

    def on_stop(self) -> None:
        self._stopped = True
        self._waiting.clear()
        if self._call is not None:
            self._call.cancel()
        super().on_stop()

    def _on_sample(self, s: Any) -> None:
        if self._begin(s):
            self._waiting.append((s, time.monotonic()))
            self._ask_next()

    def _ask_next(self) -> None:
        budget = float(self.cfg.latency_budget_ms)
        while self._call is None and self._waiting and not self._stopped:
            s, t0 = self._waiting.popleft()
            waited = (time.monotonic() - t0) * 1e3
            if waited > budget:
                self.not_asked += 1
                late = ClientResult(None, "timeout", waited, "not asked: earlier answers were late")
                self._on_answer(s, late)
                continue
            if s.session != self._asked_session:  # a new feature session starts a new filter
                self._asked_session, self.log_posterior = s.session, None
            call = asyncio.ensure_future(
                self.model.ainfer(s.z, self.log_posterior, self.schema.version)
            )
            self._call = call
            call.add_done_callback(partial(self._answered, s, t0))

    def _answered(self, s: Any, t0: float, call: asyncio.Future[ClientResult]) -> None:
        self._call = None
        if self._stopped or call.cancelled():
            return
        exc = call.exception()
        if exc is not None:  # a client bug: logged with its traceback, the sample is blocked
            trace = "".join(traceback.format_exception(exc))
            self.log.error(f"model client failed: {trace}")
            cr = ClientResult(None, "error", 0.0, f"{type(exc).__name__}: {exc}")
        else:
            cr = call.result()
        total = (time.monotonic() - t0) * 1e3
        late = cr.ok and total > float(self.cfg.latency_budget_ms)
        cr = dataclasses.replace(cr, latency_ms=total, status="timeout" if late else cr.status)
        self._on_answer(s, cr)
        self._ask_next()
