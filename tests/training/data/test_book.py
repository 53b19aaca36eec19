"""Binance depth sequencing, gap handling and the bookTicker consistency check."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.book import BinanceBookSync
from training.data.book import L2Book
from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import SELL
from training.data.columns import UPDATE


def _spot_synced() -> BinanceBookSync:
    s = BinanceBookSync("spot")
    s.on_snapshot(100, [(10.0, 1.0), (9.0, 2.0)], [(11.0, 1.5), (12.0, 3.0)], 1_000, 1_100)
    return s


def test_l2book_best_levels() -> None:
    b = L2Book()
    assert b.best_bid() is None and b.best_ask() is None
    b.bids.update({1.0: 2.0, 3.0: 4.0})
    b.asks.update({5.0: 1.0, 4.0: 0.5})
    b.touch()  # direct dict edits must invalidate the cached best levels
    assert b.best_bid() == (3.0, 4.0)
    assert b.best_ask() == (4.0, 0.5)


def test_snapshot_emits_clear_then_adds_with_snapshot_flags() -> None:
    d = _spot_synced().deltas()
    assert d.action.tolist() == [CLEAR, ADD, ADD, ADD, ADD]
    assert d.side.tolist() == [0, BUY, BUY, SELL, SELL]
    assert (d.flags & F_SNAPSHOT).all()
    assert (d.flags & F_LAST).tolist() == [0, 0, 0, 0, F_LAST]
    assert set(d.sequence.tolist()) == {100}
    assert d.ts_event.tolist() == [1_000] * 5 and d.ts_init.tolist() == [1_100] * 5


def test_spot_rules_drop_old_first_straddles_then_contiguous() -> None:
    s = _spot_synced()
    s.on_depth(90, 100, None, [(10.0, 9.0)], [], 2_000, 2_100)  # u <= lastUpdateId: dropped
    assert s.dropped == 1 and s.book.bids[10.0] == 1.0
    s.on_depth(95, 105, None, [(10.0, 0.0), (9.5, 1.0)], [(11.0, 2.0)], 3_000, 3_100)
    s.on_depth(106, 110, None, [], [(11.0, 0.0)], 4_000, 4_100)
    assert s.gaps == 0 and s.applied == 2 and s.trusted
    assert s.book.best_bid() == (9.5, 1.0) and s.book.best_ask() == (12.0, 3.0)
    d = s.deltas()
    assert d.action[5:].tolist() == [DELETE, ADD, UPDATE, DELETE]
    # F_LAST closes each exchange message, sequence is the message's final update id
    assert (d.flags[5:] & F_LAST).tolist() == [0, 0, F_LAST, F_LAST]
    assert d.sequence[5:].tolist() == [105, 105, 105, 110]
    assert d.size[5:].tolist() == [0.0, 1.0, 2.0, 0.0]


def test_spot_first_diff_must_straddle_snapshot() -> None:
    s = _spot_synced()
    s.on_depth(102, 105, None, [(10.0, 2.0)], [], 2_000, 2_100)  # 101 missing
    assert s.gaps == 1 and not s.trusted


def test_gap_clears_book_emits_nothing_until_next_snapshot_then_resyncs() -> None:
    s = _spot_synced()
    s.on_depth(101, 101, None, [(10.0, 2.0)], [], 2_000, 2_100)
    n_before = len(s.deltas())
    s.on_depth(103, 104, None, [(10.0, 3.0)], [], 3_000, 3_100)  # 102 missing
    d = s.deltas()
    assert s.gaps == 1 and not s.trusted and len(s.book.bids) == 0
    assert len(d) == n_before + 1
    assert d.action[-1] == CLEAR and d.flags[-1] == F_LAST and d.ts_event[-1] == 3_000
    s.on_depth(105, 106, None, [(9.0, 7.0)], [], 4_000, 4_100)  # untrusted: nothing emitted
    s.on_book_ticker(106, 9.0, 7.0, 11.0, 1.5)
    assert len(s.deltas()) == n_before + 1 and s.bbo_checks == 0
    assert s.resyncs == 0
    # next snapshot resyncs; buffered diffs after it are replayed
    s.on_snapshot(105, [(9.0, 1.0)], [(11.0, 1.0)], 5_000, 5_100)
    assert s.resyncs == 1 and s.trusted and s.gaps == 1
    assert s.book.bids == {9.0: 7.0}
    d = s.deltas()
    assert d.ts_init[-1] == 5_100  # replayed diff stamped no earlier than the snapshot
    assert (np.diff(d.ts_init) >= 0).all() and (np.diff(d.ts_event) >= 0).all()


def test_diffs_before_first_snapshot_are_buffered_and_replayed() -> None:
    s = BinanceBookSync("spot")
    s.on_depth(1, 5, None, [(10.0, 1.0)], [], 100, 110)  # covered by the snapshot
    s.on_depth(6, 12, None, [(10.0, 4.0)], [], 200, 210)  # straddles lastUpdateId + 1 = 9
    assert len(s.deltas()) == 0
    s.on_snapshot(8, [(10.0, 2.0)], [(11.0, 1.0)], 300, 300)
    assert s.gaps == 0 and s.resyncs == 0 and s.dropped == 1 and s.applied == 1
    assert s.book.bids == {10.0: 4.0}
    d = s.deltas()
    # the snapshot takes the earliest replayed diff's exchange time so ts_event never decreases
    assert d.ts_event.tolist() == [200, 200, 200, 200]
    assert d.ts_init.tolist() == [300, 300, 300, 300]


def test_usdm_rules_use_pu() -> None:
    s = BinanceBookSync("usdm")
    s.on_snapshot(100, [(10.0, 1.0)], [(11.0, 1.0)], 0, 0)
    s.on_depth(90, 99, 89, [(10.0, 5.0)], [], 1, 1)  # u < lastUpdateId: dropped
    s.on_depth(95, 100, 94, [(10.0, 2.0)], [], 2, 2)  # U <= lastUpdateId <= u: first applied
    s.on_depth(101, 120, 100, [(10.0, 3.0)], [], 3, 3)
    s.on_depth(125, 130, 120, [(10.0, 4.0)], [], 4, 4)  # ids may skip; pu links
    assert s.gaps == 0 and s.book.bids == {10.0: 4.0}
    s.on_depth(131, 140, 129, [(10.0, 5.0)], [], 5, 5)  # pu != previous u
    assert s.gaps == 1 and not s.trusted


def test_book_ticker_checked_when_update_ids_match_either_order() -> None:
    s = _spot_synced()
    s.on_book_ticker(100, 10.0, 1.0, 11.0, 1.5)  # book is at 100 now
    assert (s.bbo_checks, s.bbo_mismatches) == (1, 0)
    s.on_book_ticker(103, 10.0, 2.0, 11.0, 1.5)  # arrives before the diff ending at 103
    s.on_book_ticker(102, 99.0, 1.0, 99.0, 1.0)  # mid-message id: never checked
    s.on_depth(101, 103, None, [(10.0, 2.0)], [], 2_000, 2_100)
    assert (s.bbo_checks, s.bbo_mismatches) == (2, 0)
    s.on_book_ticker(103, 10.0, 2.5, 11.0, 1.5)  # size differs from the book
    assert (s.bbo_checks, s.bbo_mismatches) == (3, 1)
    assert s.mismatch_examples[0]["book_bid_size"] == 2.0
    assert s.mismatch_examples[0]["ticker_bid_size"] == 2.5


def test_cached_best_levels_follow_adds_and_deletes() -> None:
    s = _spot_synced()
    s.on_depth(101, 101, None, [(10.5, 1.0)], [(10.9, 2.0)], 1, 1)  # new best on both sides
    assert (s.book.best_bid(), s.book.best_ask()) == ((10.5, 1.0), (10.9, 2.0))
    s.on_depth(102, 102, None, [(10.5, 0.0)], [(10.9, 0.0), (11.0, 0.0)], 2, 2)
    assert (s.book.best_bid(), s.book.best_ask()) == ((10.0, 1.0), (12.0, 3.0))
    s.on_depth(103, 103, None, [(10.0, 0.0), (9.0, 0.0)], [(12.0, 0.0)], 3, 3)
    assert (s.book.best_bid(), s.book.best_ask()) == (None, None)


def test_delete_of_unknown_level_emits_nothing() -> None:
    s = _spot_synced()
    n = len(s.deltas())
    s.on_depth(101, 101, None, [(5.0, 0.0)], [], 2_000, 2_100)
    assert len(s.deltas()) == n and s.applied == 1 and s.last_u == 101


def test_bad_market_rejected() -> None:
    with pytest.raises(ValueError, match="market"):
        BinanceBookSync("coinm")  # type: ignore[arg-type]


def test_stale_snapshot_is_ignored_newer_one_resets() -> None:
    s = _spot_synced()
    s.on_depth(101, 110, None, [(10.0, 5.0)], [], 2_000, 2_100)
    n = len(s.deltas())
    s.on_snapshot(105, [(1.0, 1.0)], [(2.0, 1.0)], 3_000, 3_100)  # older than the book
    assert s.stale_snapshots == 1 and len(s.deltas()) == n and s.book.bids[10.0] == 5.0
    s.on_snapshot(120, [(10.0, 6.0)], [(11.0, 1.0)], 4_000, 4_100)  # newer: replaces the book
    assert s.snapshots == 2 and s.book.bids == {10.0: 6.0} and s.gaps == 0 and s.resyncs == 0
    s.on_depth(115, 121, None, [(10.0, 7.0)], [], 5_000, 5_100)
    assert s.gaps == 0 and s.book.bids == {10.0: 7.0}
