"""L2 price-level book and Binance depth sequencing, shared by every Binance importer.

:class:`BinanceBookSync` takes a REST snapshot and ``depthUpdate`` diffs (live WS or public-data
``T_DEPTH`` rows), applies Binance's rules, keeps the book, and emits Nautilus L2 MBP deltas as
columns (``F_LAST`` ends each exchange message; a snapshot is CLEAR + ADDs with ``F_SNAPSHOT``):

* spot: drop ``u <= lastUpdateId``; the first applied diff has ``U <= lastUpdateId + 1 <= u``;
  then ``U == previous u + 1``.
* USD-M futures: drop ``u < lastUpdateId``; the first applied diff has
  ``U <= lastUpdateId <= u``; then ``pu == previous u``.

A broken rule is a gap: counted, a single CLEAR (``F_LAST``) is emitted so no consumer keeps a
stale book, and nothing more is emitted until the next snapshot (counted as a resync). Diffs
that arrive before a snapshot are buffered and replayed against it (a recorder asks for the
snapshot after subscribing), stamped no earlier than the snapshot so ``ts_init`` never goes back.

Book check: a ``bookTicker`` whose ``u`` equals the final ``u`` of an applied diff is compared
with the reconstructed best bid/ask price and size (``bbo_checks``, ``bbo_mismatches``).

>>> s = BinanceBookSync("spot")
>>> s.on_snapshot(10, [(100.0, 1.0)], [(101.0, 2.0)], ts_event=5, ts_init=6)
>>> s.on_depth(9, 11, None, [(100.0, 0.0), (99.5, 3.0)], [], ts_event=7, ts_init=8)
>>> s.book.best_bid(), s.gaps, len(s.deltas())
((99.5, 3.0), 0, 5)
>>> s.on_depth(13, 14, None, [], [(101.0, 1.0)], ts_event=9, ts_init=10)  # 12 is missing
>>> s.gaps, s.trusted, int(s.deltas().action[-1])  # CLEAR
(1, False, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from itertools import chain
from typing import Literal

import numpy as np

from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import SELL
from training.data.columns import UPDATE
from training.data.columns import DeltaColumns
from training.errors import BadInputError

__all__ = ["BinanceBookSync", "DeltaBuilder", "L2Book", "Level"]

Level = tuple[float, float]
_MAX_PENDING = 100_000
_NEG_INF, _POS_INF = float("-inf"), float("inf")


class L2Book:
    """Price -> size per side, with the best levels cached and recomputed lazily.

    Writers that bypass :meth:`set_bid`/:meth:`set_ask` must call :meth:`touch` afterwards.
    """

    __slots__ = ("_ba", "_ba_ok", "_bb", "_bb_ok", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.clear()

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bb, self._ba = _NEG_INF, _POS_INF
        self._bb_ok = self._ba_ok = True

    def touch(self) -> None:
        """Forget the cached best levels (after editing ``bids``/``asks`` directly)."""
        self._bb_ok = self._ba_ok = False

    def best_bid(self) -> Level | None:
        if not self._bb_ok:
            self._bb = max(self.bids) if self.bids else _NEG_INF
            self._bb_ok = True
        p = self._bb
        return (p, self.bids[p]) if self.bids else None

    def best_ask(self) -> Level | None:
        if not self._ba_ok:
            self._ba = min(self.asks) if self.asks else _POS_INF
            self._ba_ok = True
        p = self._ba
        return (p, self.asks[p]) if self.asks else None


_CLEAR_LEVEL = (0.0, 0.0)
_SIDES = np.array([0, BUY, SELL], dtype=np.uint8)


@dataclass
class DeltaBuilder:
    """Collects deltas per exchange message with one list append per price level.

    Each message records ``(ts_event, ts_init, sequence, flags, n_clear, n_bid, n_ask)``; its
    levels are the CLEAR placeholder(s), then the bid and ask ``(price, size)`` tuples in order,
    each with an action code (0 = no delta, e.g. deleting a level the book never had).
    ``columns()`` drops the 0s, sets ``F_LAST`` on each message's last delta, and builds
    :class:`DeltaColumns` in numpy.
    """

    actions: list[int] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    messages: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)

    def clear_message(self, ts_event: int, ts_init: int, seq: int, flags: int) -> None:
        """A lone CLEAR (book withdrawn), or the start of a snapshot."""
        self.actions.append(CLEAR)
        self.levels.append(_CLEAR_LEVEL)
        self.messages.append((ts_event, ts_init, seq, flags, 1, 0, 0))

    def columns(self) -> DeltaColumns:
        if not self.messages:
            return DeltaColumns.empty()
        m = np.array(self.messages, dtype=np.int64).reshape(-1, 7)
        counts = m[:, 4:7]
        side = np.repeat(np.tile(_SIDES, len(m)), counts.ravel())
        msg_id = np.repeat(np.arange(len(m)), counts.sum(axis=1))
        action = np.array(self.actions, dtype=np.uint8)
        lv = np.fromiter(
            chain.from_iterable(self.levels), dtype=np.float64, count=2 * len(self.levels)
        ).reshape(-1, 2)
        keep = action != 0
        ids = msg_id[keep]
        flags = m[ids, 3].astype(np.uint8)
        if len(ids):
            last = np.ones(len(ids), dtype=bool)
            last[:-1] = ids[1:] != ids[:-1]
            flags[last] |= F_LAST
        return DeltaColumns(
            ts_event=m[ids, 0],
            ts_init=m[ids, 1],
            action=action[keep],
            side=side[keep],
            price=lv[keep, 0].copy(),
            size=lv[keep, 1].copy(),
            flags=flags,
            sequence=m[ids, 2].astype(np.uint64),
        )


def _apply_side(
    levels: dict[float, float],
    updates: Sequence[Level],
    act: Callable[[int], None],
    best: float,
    best_ok: bool,
    is_bid: bool,
) -> tuple[float, bool]:
    """Apply one side's ``(price, size)`` updates (size 0 deletes), appending each level's
    action code; returns the side's cached best price and whether that cache still holds."""
    for p, q in updates:
        if q == 0.0:
            if p in levels:
                del levels[p]
                if p == best:
                    best_ok = False
                act(DELETE)
            else:
                act(0)
        else:
            act(UPDATE if p in levels else ADD)
            levels[p] = q
            if (p > best) if is_bid else (p < best):
                best = p
    return best, best_ok


@dataclass(slots=True)
class _Diff:
    U: int
    u: int
    pu: int | None
    bids: Sequence[Level]
    asks: Sequence[Level]
    ts_event: int
    ts_init: int


class BinanceBookSync:
    """Sequences one symbol's Binance depth stream into a trusted book and L2 MBP deltas."""

    def __init__(self, market: Literal["spot", "usdm"], buffer_limit: int = 10_000) -> None:
        if market not in ("spot", "usdm"):
            raise BadInputError(f"market must be 'spot' or 'usdm', got {market!r}", field="market")
        self.market = market
        self.book = L2Book()
        self.out = DeltaBuilder()
        self.trusted = False
        self.last_u: int | None = None
        self.gaps = 0
        self.resyncs = 0
        self.snapshots = 0
        self.stale_snapshots = 0
        self.dropped = 0
        self.applied = 0
        self.skipped_untrusted = 0
        self.bbo_checks = 0
        self.bbo_mismatches = 0
        self.mismatch_examples: list[dict[str, float | int]] = []
        self._awaiting_first = False
        self._snapshot_id = 0
        self._had_gap = False
        self._buffer: list[_Diff] = []
        self._buffer_limit = buffer_limit
        self._pending: dict[int, tuple[float, float, float, float]] = {}
        self._last_ts_init = 0

    def deltas(self) -> DeltaColumns:
        return self.out.columns()

    # snapshots and diffs
    def on_snapshot(
        self,
        last_update_id: int,
        bids: Iterable[Level],
        asks: Iterable[Level],
        ts_event: int,
        ts_init: int,
    ) -> None:
        """Apply a full depth snapshot, then replay any buffered diffs that follow it.

        A snapshot older than a trusted book (``lastUpdateId <= u`` already applied) is
        ignored (counted in ``stale_snapshots``): the book is already further along.
        """
        if self.trusted and self.last_u is not None and last_update_id <= self.last_u:
            self.stale_snapshots += 1
            return
        buffered = [d for d in self._buffer if not self._too_old(d.u, last_update_id)]
        self.dropped += len(self._buffer) - len(buffered)
        self._buffer = []
        if buffered:
            ts_event = min(ts_event, buffered[0].ts_event)
        ts_init = max(ts_init, self._last_ts_init)
        book, out = self.book, self.out
        book.clear()
        bids, asks = list(bids), list(asks)
        out.actions.append(CLEAR)
        out.levels.append(_CLEAR_LEVEL)
        for levels, target in ((bids, book.bids), (asks, book.asks)):
            out.levels.extend(levels)
            out.actions.extend([ADD if q > 0.0 else 0 for _, q in levels])
            target.update((p, q) for p, q in levels if q > 0.0)
        book.touch()
        out.messages.append(
            (ts_event, ts_init, last_update_id, F_SNAPSHOT, 1, len(bids), len(asks))
        )
        self._last_ts_init = ts_init
        self.snapshots += 1
        if self._had_gap:
            self.resyncs += 1
            self._had_gap = False
        self.trusted = True
        self._awaiting_first = True
        self._snapshot_id = last_update_id
        self.last_u = last_update_id
        for d in buffered:
            self.on_depth(d.U, d.u, d.pu, d.bids, d.asks, d.ts_event, max(d.ts_init, ts_init))

    def _too_old(self, u: int, last_update_id: int) -> bool:
        return u <= last_update_id if self.market == "spot" else u < last_update_id

    def on_depth(
        self,
        U: int,
        u: int,
        pu: int | None,
        bids: Sequence[Level],
        asks: Sequence[Level],
        ts_event: int,
        ts_init: int,
    ) -> None:
        """One ``depthUpdate`` (``U`` first id, ``u`` final id, ``pu`` previous final id)."""
        if not self.trusted:
            self.skipped_untrusted += 1
            self._buffer.append(_Diff(U, u, pu, bids, asks, ts_event, ts_init))
            if len(self._buffer) > self._buffer_limit:
                del self._buffer[: len(self._buffer) - self._buffer_limit]
            return
        last = self.last_u
        assert last is not None
        if self._awaiting_first:
            if self._too_old(u, self._snapshot_id):
                self.dropped += 1
                return
            ok = U <= last + 1 <= u if self.market == "spot" else U <= last <= u
            self._awaiting_first = False
        elif self.market == "spot":
            ok = last + 1 == U
        else:
            ok = pu == last
        if not ok:
            self._gap(u, ts_event, ts_init)
            self._buffer.append(_Diff(U, u, pu, bids, asks, ts_event, ts_init))
            return
        self._apply(bids, asks, u, ts_event, ts_init)

    def _gap(self, u: int, ts_event: int, ts_init: int) -> None:
        self.gaps += 1
        self._had_gap = True
        self.trusted = False
        self.book.clear()
        ts_init = max(ts_init, self._last_ts_init)
        self.out.clear_message(ts_event, ts_init, self.last_u or 0, 0)
        self._last_ts_init = ts_init
        self._pending.clear()

    def _apply(
        self, bids: Sequence[Level], asks: Sequence[Level], u: int, ts_event: int, ts_init: int
    ) -> None:
        out, book = self.out, self.book
        act = out.actions.append
        out.levels.extend(bids)
        out.levels.extend(asks)
        book._bb, book._bb_ok = _apply_side(book.bids, bids, act, book._bb, book._bb_ok, True)
        book._ba, book._ba_ok = _apply_side(book.asks, asks, act, book._ba, book._ba_ok, False)
        ts_init = max(ts_init, self._last_ts_init)
        out.messages.append((ts_event, ts_init, u, 0, 0, len(bids), len(asks)))
        self._last_ts_init = ts_init
        self.last_u = u
        self.applied += 1
        pending = self._pending
        if pending:
            quote = pending.pop(u, None)
            if quote is not None:
                self._check(u, quote)
            if pending and next(iter(pending)) < u:
                for k in [k for k in pending if k < u]:
                    del pending[k]

    # book check
    def on_book_ticker(
        self, u: int, bid_price: float, bid_size: float, ask_price: float, ask_size: float
    ) -> None:
        """A ``bookTicker``: checked now if the book is at ``u``, or when a diff ends at ``u``."""
        if not self.trusted or self.last_u is None or u < self.last_u:
            return
        quote = (bid_price, bid_size, ask_price, ask_size)
        if u == self.last_u:
            self._check(u, quote)
            return
        self._pending[u] = quote
        if len(self._pending) > _MAX_PENDING:
            del self._pending[next(iter(self._pending))]

    def _check(self, u: int, quote: tuple[float, float, float, float]) -> None:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        self.bbo_checks += 1
        got = (*(bb or (np.nan, np.nan)), *(ba or (np.nan, np.nan)))
        if got != quote:
            self.bbo_mismatches += 1
            if len(self.mismatch_examples) < 5:
                names = ("bid_price", "bid_size", "ask_price", "ask_size")
                ex: dict[str, float | int] = {"u": u}
                ex.update({f"book_{n}": g for n, g in zip(names, got, strict=True)})
                ex.update({f"ticker_{n}": q for n, q in zip(names, quote, strict=True)})
                self.mismatch_examples.append(ex)
