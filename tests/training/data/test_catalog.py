"""MarketCatalog: Nautilus-identical Parquet, exact fixed-point decode, day partitions, atomicity."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import TradeId
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from training.data.catalog import NS_PER_DAY
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.catalog import book_state
from training.data.catalog import split_days
from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import BUYER
from training.data.columns import CLEAR
from training.data.columns import DELETE
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import SELL
from training.data.columns import SELLER
from training.data.columns import UPDATE
from training.data.columns import DeltaColumns
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.fixed import decode_fixed
from training.data.fixed import encode_fixed
from training.data.instruments import binance_instrument
from training.data.instruments import precision_needed
from training.data.report import ImportReport

DAY0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z
INST = binance_instrument("BTCUSDT", "spot")


def _events(day_offsets: list[int]) -> MarketEvents:
    """A small, valid L2 stream: snapshot on the first day, then one update per given day."""
    rows = [
        (DAY0 + 10, DAY0 + 20, CLEAR, 0, 0.0, 0.0, F_SNAPSHOT, 1),
        (DAY0 + 10, DAY0 + 20, ADD, BUY, 61837.63, 1.5, F_SNAPSHOT, 1),
        (DAY0 + 10, DAY0 + 20, ADD, BUY, 61837.62, 0.61700, F_SNAPSHOT, 1),
        (DAY0 + 10, DAY0 + 20, ADD, SELL, 61837.64, 2.0, F_SNAPSHOT | F_LAST, 1),
    ]
    trades, quotes = [], []
    for i, off in enumerate(day_offsets):
        ts = DAY0 + off * NS_PER_DAY + 1_000 + i
        rows.append((ts, ts + 5, UPDATE, BUY, 61837.63, 0.5 + i, 0, 2 + i))
        rows.append((ts, ts + 5, DELETE, SELL, 61837.64, 0.0, F_LAST, 2 + i))
        rows.append((ts + 1, ts + 6, ADD, SELL, 61840.01 + i, 0.00123, F_LAST, 3 + i))
        trades.append((ts, ts + 5, 61837.63, 0.001, SELLER if i % 2 else BUYER, 1000 + i))
        quotes.append((ts, ts + 5, 61837.63, 0.5 + i, 61840.01, 0.00123))
    return MarketEvents(
        DeltaColumns.from_rows(rows), TradeColumns.from_rows(trades), QuoteColumns.from_rows(quotes)
    )


def _python_raw(v: float, precision: int) -> int:
    return Price(v, precision).raw if v >= 0 else -Price(-v, precision).raw


def test_fixed_point_matches_nautilus_raw_and_as_double() -> None:
    rng = np.random.default_rng(0)
    for precision in (0, 1, 2, 5, 8, 9):
        ints = rng.integers(-(10**11), 10**11, size=300)
        vals = np.concatenate([ints / 10.0**precision, [0.0, 10.0**-precision, 61837.64]])
        vals = np.round(vals, precision)
        arr = encode_fixed(vals, precision)
        words = np.frombuffer(arr.buffers()[1], dtype=np.uint64).reshape(-1, 2)
        for v, (lo, hi) in zip(vals, words, strict=True):
            raw = int(lo) | (int(hi) << 64)
            if raw >= 1 << 127:
                raw -= 1 << 128
            assert raw == _python_raw(float(v), precision)
        back = decode_fixed(arr)
        expected = [
            Price.from_raw(_python_raw(float(v), precision), precision).as_double() for v in vals
        ]
        assert back.tolist() == expected  # bit-identical, not approximately equal


def test_decode_matches_correctly_rounded_int128_to_double() -> None:
    rng = np.random.default_rng(1)
    raws = [int(x) * 10**7 + int(y) for x, y in rng.integers(0, 2**62, size=(500, 2))]
    raws += [2**64 - 1, 2**64, 2**64 + 1, 2**100 + 2**47 + 1, 2**100 + 2**47]
    buf = b"".join(r.to_bytes(16, "little", signed=True) for r in raws)
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(raws), [None, pa.py_buffer(buf)])
    assert decode_fixed(arr).tolist() == [float(r) / 1e16 for r in raws]


def test_encode_rejects_values_off_the_precision_grid() -> None:
    with pytest.raises(ValueError, match=r"trade_tick\.size\[1\] = .*25\.426189.*1e-5"):
        encode_fixed(np.array([1.0, 25.426189]), 5, "trade_tick.size")
    with pytest.raises(ValueError, match="non-finite"):
        encode_fixed(np.array([np.nan]), 2)
    assert precision_needed(np.array([1.5, 25.426189]), minimum=5) == 6
    assert precision_needed(np.array([1.5]), minimum=2) == 2


def test_write_is_byte_compatible_with_nautilus_own_writer(tmp_path: Path) -> None:
    ev = _events([0])
    cat = MarketCatalog(tmp_path / "ours")
    cat.write(INST, ev)
    ours = cat.partition(SymbolDay(INST.id.value, datetime.date(2024, 8, 8)))["files"]
    ref = ParquetDataCatalog(str(tmp_path / "ref"))
    d = ev.deltas
    objs = [
        OrderBookDelta(
            INST.id,
            BookAction(int(d.action[i])),
            BookOrder(
                OrderSide(int(d.side[i])),
                Price(float(d.price[i]), INST.price_precision),
                Quantity(float(d.size[i]), INST.size_precision),
                0,
            ),
            int(d.flags[i]),
            int(d.sequence[i]),
            int(d.ts_event[i]),
            int(d.ts_init[i]),
        )
        for i in range(len(d))
    ]
    t, q = ev.trades, ev.quotes
    trades = [
        TradeTick(
            INST.id,
            Price(float(t.price[i]), INST.price_precision),
            Quantity(float(t.size[i]), INST.size_precision),
            AggressorSide(int(t.aggressor[i])),
            TradeId(str(int(t.trade_id[i]))),
            int(t.ts_event[i]),
            int(t.ts_init[i]),
        )
        for i in range(len(t))
    ]
    quotes = [
        QuoteTick(
            INST.id,
            Price(float(q.bid_price[i]), INST.price_precision),
            Price(float(q.ask_price[i]), INST.price_precision),
            Quantity(float(q.bid_size[i]), INST.size_precision),
            Quantity(float(q.ask_size[i]), INST.size_precision),
            int(q.ts_event[i]),
            int(q.ts_init[i]),
        )
        for i in range(len(q))
    ]
    ref.write_data(objs)
    ref.write_data(trades)
    ref.write_data(quotes)
    for kind in ("order_book_deltas", "trade_tick", "quote_tick"):
        (ref_file,) = (tmp_path / "ref" / "data" / kind / INST.id.value).glob("*.parquet")
        mine = pq.read_table(cat.root / ours[kind])
        theirs = pq.read_table(ref_file)
        assert mine.schema.equals(theirs.schema, check_metadata=True), kind
        assert mine.equals(theirs), kind
        assert ref_file.name == Path(ours[kind]).name  # same ts_init-range file naming


def test_round_trip_through_load_and_nautilus_queries(tmp_path: Path) -> None:
    ev = _events([0])
    cat = MarketCatalog(tmp_path)
    assert cat.write(INST, ev) == [SymbolDay("BTCUSDT.BINANCE", datetime.date(2024, 8, 8))]
    back = cat.load("BTCUSDT", datetime.date(2024, 8, 8))
    # floats come back as Nautilus's as_double() (raw / 1e16): within 1 ulp of the input
    for cls, got, want in (
        (DeltaColumns, back.deltas, ev.deltas),
        (TradeColumns, back.trades, ev.trades),
    ):
        for name in cls.names():
            a, b = getattr(got, name), getattr(want, name)
            if a.dtype.kind == "f":
                np.testing.assert_allclose(a, b, rtol=2.3e-16, atol=0, err_msg=name)
            else:
                assert np.array_equal(a, b), name
    nd = cat.nautilus.order_book_deltas(instrument_ids=[INST.id.value])
    assert [x.order.price.as_double() for x in nd] == back.deltas.price.tolist()
    assert [x.flags for x in nd] == back.deltas.flags.tolist()
    nt = cat.nautilus.trade_ticks(instrument_ids=[INST.id.value])
    assert [x.trade_id.value for x in nt] == [str(i) for i in ev.trades.trade_id]
    nq = cat.nautilus.quote_ticks(instrument_ids=[INST.id.value])
    assert [x.bid_size.as_double() for x in nq] == back.quotes.bid_size.tolist()
    assert cat.instrument("BTCUSDT.BINANCE") == INST
    assert cat.nautilus.instruments()[0].id == INST.id


def test_split_days_starts_each_later_day_with_the_book_snapshot() -> None:
    ev = _events([0, 1])
    days = split_days(ev)
    assert sorted(days) == [DAY0 // NS_PER_DAY, DAY0 // NS_PER_DAY + 1]
    day1 = days[DAY0 // NS_PER_DAY + 1].deltas
    # CLEAR + the 3 levels alive at midnight, flagged as a snapshot, F_LAST on its last delta
    assert day1.action[:4].tolist() == [CLEAR, ADD, ADD, ADD]
    assert (day1.flags[:4] & F_SNAPSHOT).all() and day1.flags[3] & F_LAST
    assert day1.ts_event[0] == DAY0 + NS_PER_DAY + 1_001
    # replaying day 1 alone ends in the same book as replaying both days
    assert all(
        np.array_equal(a, b) for a, b in zip(book_state(day1), book_state(ev.deltas), strict=True)
    )


def test_empty_book_at_midnight_adds_no_snapshot() -> None:
    ev = _events([0, 1])
    d = ev.deltas
    clear = DeltaColumns.from_rows([(DAY0 + 5_000, DAY0 + 5_000, CLEAR, 0, 0.0, 0.0, F_LAST, 9)])
    n0 = int(np.searchsorted(d.ts_event, DAY0 + NS_PER_DAY))
    deltas = DeltaColumns.concat([d.take(slice(0, n0)), clear, d.take(slice(n0, None))])
    day1 = split_days(MarketEvents(deltas, ev.trades, ev.quotes))[DAY0 // NS_PER_DAY + 1]
    assert CLEAR not in day1.deltas.action.tolist()


def test_symbol_days_resolution_and_replacement(tmp_path: Path) -> None:
    cat = MarketCatalog(tmp_path)
    cat.write(INST, _events([0, 1]))
    perp = binance_instrument("BTCUSDT", "usdm")
    d = _events([0]).deltas
    cols = {n: getattr(d, n) for n in DeltaColumns.names()}
    cols.update(price=np.round(d.price, 1), size=np.round(d.size, 3))
    ev_perp = MarketEvents(DeltaColumns(**cols), TradeColumns.empty(), QuoteColumns.empty())
    cat.write(perp, ev_perp)
    assert [str(s) for s in cat.symbol_days()] == [
        "BTCUSDT-PERP.BINANCE/2024-08-08",
        "BTCUSDT.BINANCE/2024-08-08",
        "BTCUSDT.BINANCE/2024-08-09",
    ]
    assert len(cat.symbol_days("BTCUSDT")) == 2
    assert len(cat.symbol_days("BTCUSDT-PERP")) == 1
    assert cat.symbol_days("BTCUSDT-PERP")[0].symbol == "BTCUSDT-PERP"
    assert cat.instrument("BTCUSDT-PERP").id.value == "BTCUSDT-PERP.BINANCE"
    with pytest.raises(KeyError, match="ETHUSDT"):
        cat.instrument("ETHUSDT")
    # re-importing day 2024-08-08 replaces it (and leaves 08-09 alone)
    day = datetime.date(2024, 8, 8)
    before = len(cat.load("BTCUSDT", day).deltas)
    cat.write(INST, _events([0, 0]))
    assert len(cat.load("BTCUSDT", day).deltas) == before + 3
    assert len(cat.load("BTCUSDT", datetime.date(2024, 8, 9)).deltas) > 0
    files = sorted((tmp_path / "data" / "order_book_deltas" / "BTCUSDT.BINANCE").glob("*"))
    assert len(files) == 2  # the old 08-08 file is gone
    assert len(cat.nautilus.order_book_deltas(instrument_ids=["BTCUSDT.BINANCE"])) == sum(
        len(cat.load("BTCUSDT", sd.day).deltas) for sd in cat.symbol_days("BTCUSDT")
    )


def test_write_is_all_or_nothing(tmp_path: Path) -> None:
    cat = MarketCatalog(tmp_path)
    cat.write(INST, _events([0]))
    snapshot = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    bad = _events([0, 1])
    price = bad.deltas.price.copy()
    price[-1] = 61840.015  # off the 0.01 grid, on the second day: fails after day 1 was staged
    bad = MarketEvents(
        DeltaColumns(
            **{**{n: getattr(bad.deltas, n) for n in DeltaColumns.names()}, "price": price}
        ),
        bad.trades,
        bad.quotes,
    )
    with pytest.raises(ValueError, match=r"order_book_deltas\.price"):
        cat.write(INST, bad)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert after == snapshot
    assert [str(s) for s in cat.symbol_days()] == ["BTCUSDT.BINANCE/2024-08-08"]


def test_reports_and_labels_paths(tmp_path: Path) -> None:
    cat = MarketCatalog(tmp_path)
    r = ImportReport(name="x", events=3, deltas=3)
    r.add_ts(DAY0 + 5)
    r.add_ts(DAY0)
    r.finish(0.5)
    path = cat.write_report("x", r)
    assert path == tmp_path / "reports" / "x.json"
    text = path.read_text()
    d = json.loads(text)
    assert list(d) == sorted(d)
    assert (
        d["first_ts_event"] == DAY0 and d["first_ts_event_iso"] == "2024-08-08T00:00:00.000000000Z"
    )
    assert d["last_ts_event_iso"] == "2024-08-08T00:00:00.000000005Z"
    assert d["events_per_s"] == 6.0
    assert ImportReport.from_dict(d) == r
    sd = SymbolDay("BTCUSDT.BINANCE", datetime.date(2024, 8, 9))
    assert cat.labels_path(sd) == tmp_path / "labels" / "BTCUSDT.BINANCE" / "2024-08-09.parquet"
    assert str(sd) == "BTCUSDT.BINANCE/2024-08-09" and sd.symbol == "BTCUSDT"


def test_instrument_without_market_data(tmp_path: Path) -> None:
    cat = MarketCatalog(tmp_path)
    empty = MarketEvents(DeltaColumns.empty(), TradeColumns.empty(), QuoteColumns.empty())
    assert cat.write(binance_instrument("ADABTC", "spot"), empty) == []
    assert cat.symbol_days() == []
    assert cat.instrument("ADABTC").id.value == "ADABTC.BINANCE"
    with pytest.raises(KeyError, match="XRPUSDT"):
        cat.instrument("XRPUSDT")
