"""Shadow policy: candidate model versions asked beside ``live`` on every sample, never traded.

Each shadow carries its own filtered posterior (reset with the live one at every feature
session), so its decisions are what it would have decided live. Every sample of every shadow is
recorded (ts, day, version, state, confidence, action, agreement with live) and each one, live
included, runs a :class:`PaperBook` on its actions, so a promotion can be judged on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import pyarrow as pa

from node.run_dir import SHADOW_SCHEMA
from serving.client import ModelClient

__all__ = ["PaperBook", "ShadowPolicy"]


@dataclass
class PaperBook:
    """Paper PnL of a stream of actions: ``buy`` targets ``+quantity``, ``sell`` ``-quantity``,
    ``flat`` holds; every change trades at the mid and pays ``fee_rate`` on its notional.
    No fills, queue or guardrails: the same simple rule for live and shadows, for comparison.

    >>> b = PaperBook(quantity=1.0, fee_rate=0.001)
    >>> for action, mid in (("buy", 100.0), ("flat", 101.0), ("sell", 102.0), ("flat", 101.0)):
    ...     b.step(action, mid)
    >>> round(b.pnl, 6), b.trades, b.position
    (2.696, 2, -1.0)
    """

    quantity: float
    fee_rate: float
    position: float = 0.0
    cash: float = 0.0
    fees: float = 0.0
    trades: int = 0
    last_mid: float = field(default=0.0)

    def step(self, action: str, mid: float) -> None:
        target = {"buy": self.quantity, "sell": -self.quantity}.get(action, self.position)
        delta = target - self.position
        if delta != 0.0:
            fee = abs(delta) * mid * self.fee_rate
            self.cash -= delta * mid + fee
            self.fees += fee
            self.position = target
            self.trades += 1
        self.last_mid = mid

    @property
    def pnl(self) -> float:
        """Net of fees, open position marked at the last mid."""
        return self.cash + self.position * self.last_mid


class ShadowPolicy:
    """Shadow ``clients`` (``(version, client)`` pairs) beside the live model.

    :meth:`observe` asks every shadow for the sample and records its decision; nothing here can
    submit an order (it holds no strategy or order factory). ``quantity``/``fee_rate`` size the
    paper books (live's included).
    """

    def __init__(
        self,
        clients: Sequence[tuple[str, ModelClient]],
        schema_version: str,
        quantity: float,
        fee_rate: float,
    ) -> None:
        versions = [v for v, _ in clients]
        if len(set(versions)) != len(versions):
            raise ValueError(f"shadow: duplicate versions {versions}")
        self.clients = list(clients)
        self.schema_version = schema_version
        self.rows: list[dict[str, Any]] = []
        self.books = {v: PaperBook(quantity, fee_rate) for v in versions}
        self.live_book = PaperBook(quantity, fee_rate)
        self._agree = dict.fromkeys(versions, 0)
        self._seen = dict.fromkeys(versions, 0)
        self._log_posterior: dict[str, np.ndarray | None] = dict.fromkeys(versions)

    @property
    def versions(self) -> list[str]:
        return [v for v, _ in self.clients]

    def reset(self) -> None:
        """A new feature session: every shadow restarts its filter, as live does."""
        self._log_posterior = dict.fromkeys(self.versions)

    def observe(self, ts_ns: int, day: str, z: np.ndarray, mid: float, live_action: str) -> None:
        """Ask every shadow about feature vector ``z``; record and paper-trade its action."""
        self.live_book.step(live_action, mid)
        for version, client in self.clients:
            cr = client.infer(z, self._log_posterior[version], self.schema_version)
            res = cr.result
            if res is not None:
                self._log_posterior[version] = np.asarray(res.log_posterior, dtype=np.float64)
            action = res.action if res is not None else "flat"
            agrees = action == live_action
            self._seen[version] += 1
            self._agree[version] += agrees
            self.books[version].step(action, mid)
            self.rows.append(
                {
                    "ts": ts_ns,
                    "day": day,
                    "version": version,
                    "state": -1 if res is None else res.state,
                    "confidence": -1.0 if res is None else res.confidence,
                    "action": action,
                    "status": cr.status,
                    "agrees_with_live": agrees,
                }
            )

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=SHADOW_SCHEMA)

    def summary(self) -> dict[str, Any]:
        """Per shadow version: samples, agreement rate with live, paper PnL; plus live's paper PnL."""
        out: dict[str, Any] = {"live_paper": _book_dict(self.live_book), "versions": {}}
        for v in self.versions:
            n = self._seen[v]
            out["versions"][v] = {
                "samples": n,
                "agreement": self._agree[v] / n if n else None,
                "paper": _book_dict(self.books[v]),
            }
        return out


def _book_dict(book: PaperBook) -> dict[str, float]:
    return {"pnl": book.pnl, "fees": book.fees, "trades": book.trades, "position": book.position}
