"""USD-M ``T_DEPTH`` snap/update rows → sequenced L2 deltas (the WS importer's sequencer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.data.book import BinanceBookSync
from training.data.columns import DeltaColumns
from training.data.instruments import Market
from training.data.sources.binance_public._parse import DepthRows

__all__ = ["DepthResult", "depth_deltas"]


@dataclass(frozen=True)
class DepthResult:
    """Deltas from T_DEPTH files plus what sequencing saw."""

    deltas: DeltaColumns
    messages: int
    applied: int
    gaps: int
    resyncs: int
    dropped: int


def depth_deltas(parts: Sequence[DepthRows], market: Market = "usdm") -> DepthResult:
    """Snap + update rows (any number of files, one symbol) → sequenced L2 deltas.

    A message is a run of rows sharing ``last_update_id`` and type. Messages are ordered by
    (timestamp, last_update_id, snap first) and fed to :class:`training.data.book.BinanceBookSync`
    (the WS importer's sequencer): a snap becomes CLEAR + ADDs (``F_SNAPSHOT``); USD-M updates need
    ``U <= L <= u`` first, then ``pu == previous u``. A gap is counted, a lone CLEAR (``F_LAST``)
    marks the book untrusted, and updates wait for the next snap (a resync). Updates still waiting
    for a snapshot at the end count as dropped. Every message's last delta carries ``F_LAST``.
    """
    if not parts:
        return DepthResult(DeltaColumns.empty(), 0, 0, 0, 0, 0)
    cat = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in ("ts", "first_id", "last_id", "pu", "is_bid", "is_snap", "price", "qty")
    }
    # message id per row: a new message where (file, last_id, is_snap) changes
    file_no = np.concatenate([np.full(len(p.ts), i) for i, p in enumerate(parts)])
    n = len(file_no)
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = (
        (file_no[1:] != file_no[:-1])
        | (cat["last_id"][1:] != cat["last_id"][:-1])
        | (cat["is_snap"][1:] != cat["is_snap"][:-1])
    )
    starts = np.flatnonzero(boundary)
    m_ts, m_u = cat["ts"][starts], cat["last_id"][starts]
    m_first, m_pu, m_snap = cat["first_id"][starts], cat["pu"][starts], cat["is_snap"][starts]
    order = np.lexsort((~m_snap, m_u, m_ts))

    price, qty = cat["price"].tolist(), cat["qty"].tolist()
    is_bid = cat["is_bid"].tolist()
    ends = np.append(starts[1:], n).tolist()
    sync = BinanceBookSync(market)
    for mid in order.tolist():
        lo, hi = int(starts[mid]), ends[mid]
        bids = [(price[i], qty[i]) for i in range(lo, hi) if is_bid[i]]
        asks = [(price[i], qty[i]) for i in range(lo, hi) if not is_bid[i]]
        ts = int(m_ts[mid])
        if m_snap[mid]:
            sync.on_snapshot(int(m_u[mid]), bids, asks, ts_event=ts, ts_init=ts)
        else:
            U, u, pu = int(m_first[mid]), int(m_u[mid]), int(m_pu[mid])
            sync.on_depth(U, u, pu, bids, asks, ts_event=ts, ts_init=ts)
    return DepthResult(
        sync.deltas(),
        messages=len(starts),
        applied=sync.applied,
        gaps=sync.gaps,
        resyncs=sync.resyncs,
        dropped=len(starts) - sync.snapshots - sync.applied,
    )
