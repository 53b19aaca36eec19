"""Loading recordings for replay: the sync point, gap-free diffs, clear errors."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import msgspec
import pytest

from node.venue.recording import DEPTH
from node.venue.recording import TRADE
from node.venue.recording import Recording
from node.venue.recording import load_recording
from training.data.csv import DataFileError


def _diffs(rec: Recording) -> list[dict]:
    return [msgspec.json.decode(m.data) for m in rec.messages if m.kind == DEPTH]


def test_spot_starts_at_the_diff_that_bridges_the_snapshot(spot_recording: Recording) -> None:
    rec = spot_recording
    L = rec.last_update_id
    assert (rec.market, rec.symbol, L) == ("spot", "BTCUSDT", 50093239218)
    diffs = _diffs(rec)
    assert rec.messages[0].kind == DEPTH
    assert diffs[0]["U"] <= L + 1 <= diffs[0]["u"]  # line 5 of the file, before the snapshot line
    assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))
    assert diffs[-1]["u"] > 50093421584  # both files: the 0809 one continues the 0808 one
    assert len(rec.bids) == len(rec.asks) == 1000
    assert (rec.price_decimals, rec.size_decimals) == (8, 8)
    assert rec.first_event_ms == diffs[0]["E"]
    counts = rec.counts()
    assert counts["depth"] == len(diffs) == 3451 - 2 + 3044  # two diffs are older than the snapshot
    assert counts["trade"] > 19_000 and counts["bookTicker"] > 70_000
    n, start = rec.busiest_minute()
    assert 0 < n <= len(rec.messages)
    assert rec.messages[0].recv_ns <= start <= rec.messages[-1].recv_ns
    assert 640 < rec.duration_s < 660


def test_usdm_sync_point_and_market_trades_only(usdm_recording: Recording) -> None:
    rec = usdm_recording
    L = rec.last_update_id
    diffs = _diffs(rec)
    assert diffs[0]["U"] <= L <= diffs[0]["u"]
    assert all(b["pu"] == a["u"] for a, b in itertools.pairwise(diffs))
    assert (rec.price_decimals, rec.size_decimals) == (2, 3)
    trades = [msgspec.json.decode(m.data) for m in rec.messages if m.kind == TRADE]
    assert trades and all(t["X"] == "MARKET" for t in trades)


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def test_a_depth_gap_names_the_line(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir / "usdm_btcusdt_20240808.gz")[:2000]
    depth = [i for i, line in enumerate(lines) if b"@depth" in line]
    cut = depth[20]  # well after the sync point
    bad = tmp_path / "gap.gz"
    with gzip.open(bad, "wb") as f:
        f.writelines(lines[:cut] + lines[cut + 1 :])
    # the next diff (0-based index depth[21], one line earlier once ``cut`` is gone) breaks the chain
    with pytest.raises(DataFileError, match=rf"gap\.gz:{depth[21]}: depth gap"):
        load_recording([bad])


def test_no_snapshot_or_bad_lines_are_clear_errors(ws_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no REST depth snapshot"):
        load_recording([ws_dir / "spot_btcusdt_20240809.gz"])
    lines = _lines(ws_dir / "spot_btcusdt_20240808.gz")[:50]
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.writelines([*lines[:30], b"1723161254 {not json\n", *lines[30:]])
    with pytest.raises(DataFileError, match=r"bad\.gz:31:"):
        load_recording([bad])
    with pytest.raises(DataFileError, match="no such file"):
        load_recording([tmp_path / "missing.gz"])
