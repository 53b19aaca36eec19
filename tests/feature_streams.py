"""Random L2 + trade streams for feature-engine tests (shared by the engine and actor tests)."""

from __future__ import annotations

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
from training.data.columns import TradeColumns

__all__ = ["random_stream"]

S = 1_000_000_000  # one second in ns


def random_stream(
    seed: int, seconds: int = 300, jitter_ns: int = 300_000_000, garbage: bool = False
) -> tuple[DeltaColumns, TradeColumns]:
    """A random L2 stream: snapshot, ~10 messages/s, trades, receive jitter vs exchange time;
    prices/sizes on a 0.01 / 1e-6 grid (valid for BTCUSDT.BINANCE)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    mid = 100.0
    ts0 = 1_700_000_000 * S
    levels = (
        [round(mid - 0.01 * k, 2) for k in range(1, 21)],
        [round(mid + 0.01 * k, 2) for k in range(21)],
    )
    snap = [(CLEAR, 0, 0.0, 0.0)] + [(ADD, BUY, p, 1.0) for p in levels[0]]
    snap += [(ADD, SELL, p, 1.0) for p in levels[1][1:]]
    for k, (a, s, p, q) in enumerate(snap):
        flags = F_SNAPSHOT | (F_LAST if k == len(snap) - 1 else 0)
        rows.append((ts0, ts0 + 5, a, s, p, q, flags, 0))
    n_msgs = seconds * 10
    ts_ev = ts0 + np.sort(rng.integers(S // 10, seconds * S, n_msgs))
    for m in range(n_msgs):
        ts_i = int(ts_ev[m]) + int(rng.integers(0, jitter_ns + 1))
        n = int(rng.integers(1, 8))
        mid += float(rng.normal(0, 0.01))
        for k in range(n):
            side = BUY if rng.random() < 0.5 else SELL
            off = 0.01 * int(rng.integers(1, 15))
            price = round(mid - off if side == BUY else mid + off, 2)
            size = 0.0 if rng.random() < 0.3 else round(float(rng.exponential(1.0)), 6) + 1e-6
            action = DELETE if size == 0.0 else UPDATE
            if garbage and rng.random() < 0.05:
                action, side = int(rng.integers(1, 5)), int(rng.integers(0, 3))
                price = float(rng.choice([0.0, -1.0, 1e9, price]))
            if rng.random() < 0.002:
                action = CLEAR
            rows.append((int(ts_ev[m]), ts_i, action, side, price, size, F_LAST * (k == n - 1), m))
    d = DeltaColumns.from_rows(rows)
    nt = seconds * 5
    tts = ts0 + np.sort(rng.integers(S // 10, seconds * S, nt))
    t = TradeColumns(
        ts_event=tts,
        ts_init=tts + rng.integers(0, jitter_ns + 1, nt),
        price=(100.0 + rng.normal(0, 0.05, nt)).round(2),
        size=rng.exponential(0.5, nt).round(6) + 1e-6,
        aggressor=rng.integers(0 if garbage else 1, 3, nt).astype(np.uint8),
        trade_id=np.arange(nt),
    )
    return d, t
