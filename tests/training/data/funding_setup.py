"""A USD-M recording with Binance ``@markPrice@1s`` frames: the test fixture for perp funding.

Provenance: the first :data:`SECONDS` seconds (by receive stamp) of the real recording
``../shared/data/binance-ws/usdm_btcusdt_20240808.gz`` (BTCUSDT USD-M, 2024-08-08 23:54 UTC:
``@depth@0ms``, ``@trade``, ``@bookTicker`` and the REST snapshot), copied line for line, with
one ``btcusdt@markPrice@1s`` frame per exchange second added in Binance's own format
(``{"e":"markPriceUpdate","E","s","p","i","P","r","T"}``, prices and rate as strings). The real
recording has no markPrice stream, so these frames are ours: ``p`` is the last bookTicker mid,
``i`` 3.1 below it, ``r`` is :data:`RATE_1` for the first :data:`CHANGE_AFTER_S` seconds then
:data:`RATE_2`, ``T`` the next settlement (2024-08-09 00:00 UTC). Each frame's receive stamp is
its ``E`` plus the median receive-minus-exchange offset of the slice's trades (+1 ms); on odd
seconds it is instead the stamp of the last depth or trade line received before that, so half the
frames tie on ``ts_init`` with a book message or trade (delivery order on ties is under test).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from statistics import median

SOURCE = "usdm_btcusdt_20240808.gz"
NAME = "usdm_btcusdt_20240808_first60s_with_markPrice1s.gz"
SECONDS = 60
CHANGE_AFTER_S = 30
RATE_1 = "0.00010000"
RATE_2 = "0.00012840"
NEXT_FUNDING_MS = 1_723_161_600_000
MS = 1_000_000


def mark_price_line(recv_ns: int, e_ms: int, mark: float, rate: str, t_ms: int) -> bytes:
    """One recorded ``<recv_ns> <json>`` line of Binance's ``@markPrice@1s`` stream."""
    data = {
        "e": "markPriceUpdate",
        "E": e_ms,
        "s": "BTCUSDT",
        "p": f"{mark:.8f}",
        "i": f"{mark - 3.1:.8f}",
        "P": f"{mark + 0.4:.8f}",
        "r": rate,
        "T": t_ms,
    }
    frame = {"stream": "btcusdt@markPrice@1s", "data": data}
    return f"{recv_ns} {json.dumps(frame, separators=(',', ':'))}\n".encode()


def build(
    ws_dir: Path,
    out_dir: Path,
    seconds: int | None = SECONDS,
    change_after_s: int = CHANGE_AFTER_S,
) -> tuple[Path, list[tuple[int, int, str, int]]]:
    """Write the fixture into ``out_dir``; returns its path and the added frames as
    ``(E_ms, recv_ns, r, T_ms)``, in file order. ``seconds=None`` keeps the whole recording
    (named as its source); ``change_after_s``: when the rate steps to :data:`RATE_2`."""
    lines = gzip.decompress((ws_dir / SOURCE).read_bytes()).splitlines(keepends=True)
    t0 = int(lines[0].split(b" ", 1)[0])
    end = t0 + seconds * 1_000_000_000 if seconds is not None else None
    kept = [ln for ln in lines if end is None or int(ln.split(b" ", 1)[0]) < end]
    offsets, mids, first_e, last_e, book_or_trade = [], [], None, 0, []
    for ln in kept:
        recv, rest = ln.split(b" ", 1)
        msg = json.loads(rest)
        data = msg.get("data", {})
        if data.get("e") == "trade":
            offsets.append(int(recv) - data["E"] * MS)
        if data.get("e") in ("trade", "depthUpdate"):
            book_or_trade.append(int(recv))
        if data.get("e") == "bookTicker":
            mids.append((int(recv), (float(data["b"]) + float(data["a"])) / 2))
        if "E" in data:
            first_e = data["E"] if first_e is None else first_e
            last_e = max(last_e, data["E"])
    offset = int(median(offsets)) + MS
    frames = []
    for e_ms in range((first_e // 1000 + 1) * 1000, last_e + 1, 1000):
        recv = e_ms * MS + offset
        if e_ms // 1000 % 2:
            recv = max(r for r in book_or_trade if r <= recv)
        mark = next((m for r, m in reversed(mids) if r <= recv), mids[0][1])
        rate = RATE_1 if e_ms - first_e < change_after_s * 1000 else RATE_2
        frames.append((e_ms, recv, rate, NEXT_FUNDING_MS, mark))
    added = [(recv, mark_price_line(recv, e, m, r, t)) for e, recv, r, t, m in frames]
    merged, i = [], 0  # the recording's lines keep their order; ours go in by receive stamp
    for ln in kept:
        while i < len(added) and added[i][0] < int(ln.split(b" ", 1)[0]):
            merged.append(added[i][1])
            i += 1
        merged.append(ln)
    merged += [ln for _, ln in added[i:]]
    path = out_dir / (NAME if seconds is not None else SOURCE)
    with gzip.open(path, "wb") as f:
        f.writelines(merged)
    return path, [(e, recv, r, t) for e, recv, r, t, _ in frames]
