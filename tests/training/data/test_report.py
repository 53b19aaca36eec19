"""ImportReport owns the tallying every importer used to do by hand."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from training.data.catalog import SymbolDay
from training.data.columns import DeltaColumns
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.report import ImportReport

DAY0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z


def _events(ts: list[int], quotes: int = 0) -> MarketEvents:
    deltas = DeltaColumns.from_rows([(t, t, 1, 1, 10.0, 1.0, 128, 1) for t in ts])
    trades = TradeColumns.from_rows([(ts[0] + 1, ts[0] + 1, 10.0, 1.0, 1, 1)])
    qs = QuoteColumns.from_rows([(ts[-1], ts[-1], 9.0, 1.0, 10.0, 1.0)] * quotes)
    return MarketEvents(deltas, trades, qs)


def test_add_tallies_counts_time_range_and_symbol_days() -> None:
    r = ImportReport(name="x")
    perp = [SymbolDay("BTCUSDT-PERP.BINANCE", datetime.date(2024, 8, 9))]
    r.add("BTCUSDT-PERP.BINANCE", _events([DAY0 + 50, DAY0 + 90], quotes=2), perp)
    r.add("BTCUSDT.BINANCE", _events([DAY0 + 5, DAY0 + 7]), ["BTCUSDT.BINANCE/2024-08-08"])
    r.add("BTCUSDT.BINANCE", _events([DAY0 + 8]), ["BTCUSDT.BINANCE/2024-08-08"])
    assert (r.deltas, r.trades, r.quotes, r.events) == (5, 3, 2, 10)
    assert (r.first_ts_event, r.last_ts_event) == (DAY0 + 5, DAY0 + 90)
    # sorted and unique, in SymbolDay order (instrument id, then day)
    assert r.instrument_ids == ["BTCUSDT-PERP.BINANCE", "BTCUSDT.BINANCE"]
    assert r.symbol_days == ["BTCUSDT-PERP.BINANCE/2024-08-09", "BTCUSDT.BINANCE/2024-08-08"]
    assert "precision_widened" not in r.extra


def test_add_records_a_widened_precision() -> None:
    r = ImportReport(name="x")
    r.add("BTCUSDT.BINANCE", _events([DAY0]), widened={"size_precision": [5, 6]})
    r.add("ETHUSDT.BINANCE", _events([DAY0]), widened={})
    assert r.extra == {"precision_widened": {"BTCUSDT.BINANCE": {"size_precision": [5, 6]}}}


def test_write_is_atomic_sorted_json(tmp_path: Path) -> None:
    r = ImportReport(name="x")
    r.add("BTCUSDT.BINANCE", _events([DAY0]))
    path = r.write(tmp_path / "reports" / "x.json")
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
    d = json.loads(path.read_text())
    assert list(d) == sorted(d) and ImportReport.from_dict(d) == r
