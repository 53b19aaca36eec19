"""Splitting columnar market events into UTC days, each day after the first opening with a
snapshot of the book the deltas before it left, so every symbol-day replays on its own
(:class:`~training.data.catalog.MarketCatalog` writes what this splits)."""

from __future__ import annotations

import numpy as np

from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import DeltaColumns
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns

__all__ = ["NS_PER_DAY", "book_state", "day_start_snapshot", "split_days"]

NS_PER_DAY = 86_400 * 1_000_000_000


def book_state(deltas: DeltaColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2 book (side, price, size) after applying ``deltas``, vectorised.

    Starts from the last CLEAR (an empty book before it); for each (side, price) the last
    delta wins; DELETE or size 0 removes the level. Sorted bids high->low then asks low->high.
    """
    clears = np.flatnonzero(deltas.action == CLEAR)
    start = int(clears[-1]) + 1 if len(clears) else 0
    act = deltas.action[start:]
    side, price, size = deltas.side[start:], deltas.price[start:], deltas.size[start:]
    if len(act) == 0:
        empty = np.empty(0)
        return empty.astype(np.uint8), empty, empty
    order = np.lexsort((np.arange(len(act)), price, side))  # by level, then time
    s_o, p_o = side[order], price[order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = (s_o[1:] != s_o[:-1]) | (p_o[1:] != p_o[:-1])
    last = order[is_last]
    keep = last[(act[last] != DELETE) & (size[last] > 0)]
    s, p, q = side[keep], price[keep], size[keep]
    order = np.lexsort((np.where(s == BUY, -p, p), s))
    return s[order].astype(np.uint8), p[order], q[order]


def day_start_snapshot(book_before: DeltaColumns, ts_event: int, ts_init: int) -> DeltaColumns:
    """CLEAR + full snapshot of the book ``book_before`` leaves; empty if that book is empty."""
    side, price, size = book_state(book_before)
    if len(side) == 0:
        return DeltaColumns.empty()
    seq = int(book_before.sequence[-1]) if len(book_before) else 0
    n = len(side) + 1
    flags = np.full(n, F_SNAPSHOT, dtype=np.uint8)
    flags[-1] |= F_LAST
    return DeltaColumns(
        ts_event=np.full(n, ts_event, dtype=np.int64),
        ts_init=np.full(n, ts_init, dtype=np.int64),
        action=np.concatenate([[CLEAR], np.full(n - 1, ADD)]).astype(np.uint8),
        side=np.concatenate([[0], side]).astype(np.uint8),
        price=np.concatenate([[0.0], price]),
        size=np.concatenate([[0.0], size]),
        flags=flags,
        sequence=np.full(n, seq, dtype=np.uint64),
    )


def _day_index(ts_event: np.ndarray) -> np.ndarray:
    return np.asarray(ts_event, dtype=np.int64) // NS_PER_DAY


def _sorted_by_ts_init(cols: DeltaColumns | TradeColumns | QuoteColumns) -> object:
    if len(cols) < 2 or (np.diff(cols.ts_init) >= 0).all():
        return cols
    return cols.take(np.argsort(cols.ts_init, kind="stable"))


def split_days(events: MarketEvents) -> dict[int, MarketEvents]:
    """Split by UTC day of ``ts_event``; each day after the first opens with a book snapshot."""
    d, t, q = events.deltas, events.trades, events.quotes
    days_d, days_t, days_q = _day_index(d.ts_event), _day_index(t.ts_event), _day_index(q.ts_event)
    all_days = sorted(set(days_d.tolist()) | set(days_t.tolist()) | set(days_q.tolist()))
    out: dict[int, MarketEvents] = {}
    for day in all_days:
        dmask = days_d == day
        day_deltas = d.take(dmask)
        idx = np.flatnonzero(dmask)
        if len(idx) and idx[0] > 0 and day_deltas.action[0] != CLEAR:
            firsts = [int(day_deltas.ts_event[0])]
            firsts += [
                int(c.ts_event[m][0])
                for c, m in ((t, days_t == day), (q, days_q == day))
                if m.any()
            ]
            snap = day_start_snapshot(
                d.take(slice(0, int(idx[0]))), min(firsts), int(day_deltas.ts_init[0])
            )
            day_deltas = DeltaColumns.concat([snap, day_deltas])
        out[day] = MarketEvents(
            deltas=_sorted_by_ts_init(day_deltas),  # type: ignore[arg-type]
            trades=_sorted_by_ts_init(t.take(days_t == day)),  # type: ignore[arg-type]
            quotes=_sorted_by_ts_init(q.take(days_q == day)),  # type: ignore[arg-type]
        )
    return out
