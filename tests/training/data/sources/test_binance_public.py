"""Binance public-data import: real fixtures, plus zipped/gzipped/header/µs variants generated
from real rows (Nautilus's spot trades Parquet, the USD-M WebSocket recording)."""

from __future__ import annotations

import datetime
import gzip
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from nautilus_trader.adapters.binance import BinanceBar
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType

from tests.replay import replayed
from training.cli.data import data as data_group
from training.data.catalog import MarketCatalog
from training.data.catalog import book_state
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
from training.data.csv import DataFileError
from training.data.sources.binance_public import depth_deltas
from training.data.sources.binance_public import detect_kind
from training.data.sources.binance_public import import_binance
from training.data.sources.binance_public import parse_book_ticker
from training.data.sources.binance_public import parse_depth
from training.data.sources.binance_public import parse_klines
from training.data.sources.binance_public import parse_trades
from training.data.sources.binance_public import parse_trades_parquet

DEPTH_HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"


# -- helpers -----------------------------------------------------------------------------------


def write_variant(path: Path, lines: list[str], header: str | None = None) -> Path:
    """Write CSV lines as plain, ``.gz`` or ``.zip`` (by suffix), optionally with a header."""
    text = "\n".join(([header] if header else []) + lines) + "\n"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.with_suffix(".csv").name, text)
    elif path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="session")
def real_trades(public_dir: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(public_dir / "btcusdt-trades.parquet")
    ms = table.column("timestamp").cast(pa.int64()).to_numpy()
    t = table.to_pandas()
    return {
        "ms": ms,
        "id": t["trade_id"].to_numpy(),
        "price": t["price"].to_numpy(),
        "qty": t["quantity"].to_numpy(),
        "maker": (t["buyer_maker"].str.lower() == "true").to_numpy(),
    }


def trade_lines(t: dict[str, np.ndarray], n: int, *, spot: bool, us: bool = False) -> list[str]:
    out = []
    for i in range(n):
        ts = int(t["ms"][i]) * (1000 if us else 1)
        row = [
            str(int(t["id"][i])),
            repr(float(t["price"][i])),
            repr(float(t["qty"][i])),
            repr(float(t["price"][i] * t["qty"][i])),
            str(ts),
            "True" if spot and t["maker"][i] else ("true" if t["maker"][i] else "false"),
        ]
        if spot:
            row[5] = "True" if t["maker"][i] else "False"
            row.append("True")
        out.append(",".join(row))
    return out


@pytest.fixture(scope="session")
def usdm_ws(ws_dir: Path) -> dict[str, list]:
    """The first part of the real USD-M recording: snapshot, depth diffs, bookTickers."""
    snapshot, depth, tickers = None, [], []
    with gzip.open(ws_dir / "usdm_btcusdt_20240808.gz", "rt") as f:
        for lineno, line in enumerate(f):
            if lineno > 8000:
                break
            _recv, raw = line.split(" ", 1)
            msg = json.loads(raw)
            if "lastUpdateId" in msg:
                snapshot = msg
            elif msg["stream"].endswith("@bookTicker"):
                tickers.append(msg["data"])
            elif "depth" in msg["stream"]:
                depth.append(msg["data"])
    assert snapshot is not None
    return {"snapshot": [snapshot], "depth": depth, "tickers": tickers}


def t_depth_files(tmp: Path, ws: dict[str, list], drop: int | None = None) -> tuple[Path, Path]:
    """Real USD-M snapshot + diffs written as T_DEPTH snap/update CSVs (optionally one dropped)."""
    snap = ws["snapshot"][0]
    lid, ts = snap["lastUpdateId"], snap["T"]
    snap_rows = [f"BTCUSDT,{ts},{lid},{lid},b,snap,{p},{q},-1" for p, q in snap["bids"]]
    snap_rows += [f"BTCUSDT,{ts},{lid},{lid},a,snap,{p},{q},-1" for p, q in snap["asks"]]
    upd_rows = []
    for i, m in enumerate(ws["depth"]):
        if i == drop:
            continue
        assert m["b"] or m["a"], "an empty diff would vanish from T_DEPTH"
        for side, levels in (("b", m["b"]), ("a", m["a"])):
            for p, q in levels:
                upd_rows.append(f"BTCUSDT,{m['T']},{m['U']},{m['u']},{side},set,{p},{q},{m['pu']}")
    return (
        write_variant(tmp / "BTCUSDT_T_DEPTH_2024-08-08_depth_snap.csv", snap_rows, DEPTH_HEADER),
        write_variant(tmp / "BTCUSDT_T_DEPTH_2024-08-08_depth_update.csv", upd_rows, DEPTH_HEADER),
    )


def reference_book(ws: dict[str, list]) -> tuple[dict[float, float], dict[float, float], int]:
    """Book after Binance's USD-M rules, applied naively message by message."""
    snap = ws["snapshot"][0]
    bids = {float(p): float(q) for p, q in snap["bids"]}
    asks = {float(p): float(q) for p, q in snap["asks"]}
    last, applied = snap["lastUpdateId"], 0
    first = True
    for m in ws["depth"]:
        if first:
            if m["u"] < last:
                continue
            assert m["U"] <= last <= m["u"]
            first = False
        else:
            assert m["pu"] == last
        for book, levels in ((bids, m["b"]), (asks, m["a"])):
            for p, q in levels:
                if float(q) == 0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
        last, applied = m["u"], applied + 1
    return bids, asks, applied


def catalog_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*.parquet")) if (root / "data").exists() else []


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "symbol"),
    [
        ("BTCUSDT-trades-2024-08-08.zip", "trades", "BTCUSDT"),
        ("ETHUSDT-aggTrades-2024-08-08.csv", "aggTrades", "ETHUSDT"),
        ("BTCUSDT-bookTicker-2023-05-01.zip", "bookTicker", "BTCUSDT"),
        ("BTCUSDT-1m-2024-08-08.zip", "klines", "BTCUSDT"),
        ("btcusdt-depth-update.csv", "depth", "BTCUSDT"),
        ("BTCUSDT_T_DEPTH_2022-11-01_depth_snap.csv", "depth", "BTCUSDT"),
    ],
)
def test_detect_kind(name: str, kind: str, symbol: str) -> None:
    assert detect_kind(name) == (kind, symbol)


def test_detect_kind_unknown_asks_for_kind() -> None:
    with pytest.raises(DataFileError, match="--kind"):
        detect_kind("BTCUSDT-metrics-2024-08-08.csv")  # fundingRate is a kind now


# -- trades ------------------------------------------------------------------------------------


def test_parquet_trades_real_fixture(public_dir: Path, real_trades: dict, tmp_path: Path) -> None:
    t = parse_trades_parquet(public_dir / "btcusdt-trades.parquet")
    assert len(t) == 2001
    assert t.ts_event[0] == 1_610_064_000_278_000_000  # 2021-01-08T00:00:00.278Z
    np.testing.assert_array_equal(t.trade_id, real_trades["id"])
    np.testing.assert_array_equal(t.price, real_trades["price"])
    # maker buyer → the seller hit the bid
    np.testing.assert_array_equal(t.aggressor == SELLER, real_trades["maker"])
    assert set(np.unique(t.aggressor).tolist()) == {BUYER, SELLER}

    report, path = import_binance(
        [public_dir / "btcusdt-trades.parquet"], tmp_path / "cat", name="pq", progress=False
    )
    assert path == tmp_path / "cat" / "reports" / "pq.json"
    assert report.trades == 2001 and report.events == 2001 and report.gaps == 0
    assert report.symbol_days == ["BTCUSDT.BINANCE/2021-01-08"]
    # 2021 sizes have 6 decimals; today's LOT_SIZE step is 1e-5: the instrument is widened
    assert report.extra["precision_widened"] == {"BTCUSDT.BINANCE": {"size_precision": [5, 6]}}
    cat = MarketCatalog(tmp_path / "cat")
    back = cat.load("BTCUSDT", datetime.date(2021, 1, 8)).trades
    # fixed-point round trip: equal to the decimal value to the last bit or two
    np.testing.assert_allclose(back.price, t.price, rtol=1e-15, atol=0)
    np.testing.assert_allclose(back.size, t.size, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(back.aggressor, t.aggressor)
    ticks = cat.nautilus.trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    assert len(ticks) == 2001
    np.testing.assert_array_equal(back.price, [x.price.as_double() for x in ticks])
    assert ticks[0].price.as_double() == 39432.48 and str(ticks[0].trade_id) == "553287559"
    assert ticks[0].aggressor_side.name == "SELLER"  # buyer_maker True


@pytest.mark.parametrize(
    ("fname", "spot", "header", "us"),
    [
        ("BTCUSDT-trades-2021-01-08.csv", True, False, False),  # spot: no header
        ("BTCUSDT-trades-2021-01-08.zip", True, False, False),
        ("BTCUSDT-trades-2021-01-08.csv.gz", True, True, True),  # newer: header, µs
        ("BTCUSDT-trades-2021-01-08.zip", False, True, False),  # USD-M: 6 columns, header
    ],
)
def test_trade_csv_variants_equal_parquet(
    public_dir: Path,
    real_trades: dict,
    tmp_path: Path,
    fname: str,
    spot: bool,
    header: bool,
    us: bool,
) -> None:
    n = 300
    head = "id,price,qty,quote_qty,time,is_buyer_maker" + (",is_best_match" if spot else "")
    path = write_variant(
        tmp_path / fname, trade_lines(real_trades, n, spot=spot, us=us), head if header else None
    )
    got = parse_trades(path)
    want = parse_trades_parquet(public_dir / "btcusdt-trades.parquet").take(slice(0, n))
    for col in ("ts_event", "price", "size", "aggressor", "trade_id"):
        np.testing.assert_array_equal(getattr(got, col), getattr(want, col), err_msg=col)


def test_agg_trades_spot_and_usdm(real_trades: dict, tmp_path: Path) -> None:
    rows = []
    for i in range(50):
        price, qty = float(real_trades["price"][i]), float(real_trades["qty"][i])
        base = f"{1000 + i},{price!r},{qty!r},{10 * i},{10 * i + 2}"
        rows.append(f"{base},{real_trades['ms'][i]},{bool(real_trades['maker'][i])}")
    usdm = write_variant(
        tmp_path / "BTCUSDT-aggTrades-2021-01-08.csv",
        [r.lower() for r in rows],
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker",
    )
    spot = write_variant(tmp_path / "BTCUSDT-aggTrades-2021-01-08.zip", [r + ",True" for r in rows])
    a, b = parse_trades(usdm, "aggTrades"), parse_trades(spot, "aggTrades")
    np.testing.assert_array_equal(a.trade_id, np.arange(1000, 1050))
    for col in ("ts_event", "price", "size", "aggressor", "trade_id"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
    np.testing.assert_array_equal(a.aggressor == SELLER, real_trades["maker"][:50])


# -- bookTicker --------------------------------------------------------------------------------


def test_book_ticker_from_real_usdm_messages(usdm_ws: dict, tmp_path: Path) -> None:
    tickers = usdm_ws["tickers"][:500]
    rows = [f"{m['u']},{m['b']},{m['B']},{m['a']},{m['A']},{m['T']},{m['E']}" for m in tickers]
    head = "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"
    path = write_variant(tmp_path / "BTCUSDT-bookTicker-2024-08-08.zip", rows, head)
    q = parse_book_ticker(path)
    assert len(q) == 500
    np.testing.assert_array_equal(q.bid_price, [float(m["b"]) for m in tickers])
    np.testing.assert_array_equal(q.ask_size, [float(m["A"]) for m in tickers])
    np.testing.assert_array_equal(q.ts_event, [m["T"] * 1_000_000 for m in tickers])
    assert (q.ask_price > q.bid_price).all()

    report, _ = import_binance([path], tmp_path / "cat", name="bt", progress=False)
    assert report.quotes == 500 and report.instrument_ids == ["BTCUSDT-PERP.BINANCE"]
    ticks = MarketCatalog(tmp_path / "cat").nautilus.quote_ticks(
        instrument_ids=["BTCUSDT-PERP.BINANCE"]
    )
    assert len(ticks) == 500 and str(ticks[0].bid_price) == tickers[0]["b"].rstrip("0")


# -- T_DEPTH -----------------------------------------------------------------------------------


def test_depth_fixtures_snap_then_noncontiguous_update_is_a_gap(
    public_dir: Path, tmp_path: Path
) -> None:
    snap_path = public_dir / "btcusdt-depth-snap.csv"
    upd_path = public_dir / "btcusdt-depth-update.csv"
    snap_only = depth_deltas([parse_depth(snap_path)])
    d = snap_only.deltas
    assert len(d) == 101 and snap_only.gaps == 0
    assert d.action[0] == CLEAR and (d.action[1:] == ADD).all()
    assert (d.flags & F_SNAPSHOT).all() and d.flags[-1] & F_LAST
    assert int((d.flags & F_LAST).astype(bool).sum()) == 1
    assert (d.side[1:] == BUY).all() and d.price[1] == 20377.0 and d.size[1] == 1.77

    report, path = import_binance([snap_path, upd_path], tmp_path / "cat", name="d", progress=False)
    assert report.gaps == 1  # update U=2098041693435 > snapshot lastUpdateId 2098021528332
    assert report.deltas == 102  # snapshot, then a CLEAR marking the book untrusted
    assert report.symbol_days == ["BTCUSDT-PERP.BINANCE/2022-11-01"]
    saved = json.loads(path.read_text())
    assert saved["gaps"] == 1 and saved["last_ts_event_iso"] == "2022-11-01T23:59:59.939000000Z"
    back = MarketCatalog(tmp_path / "cat").load("BTCUSDT-PERP", datetime.date(2022, 11, 1)).deltas
    assert back.action[-1] == CLEAR and len(book_state(back)[0]) == 0


def test_depth_from_real_ws_stream_is_contiguous_and_rebuilds_the_book(
    usdm_ws: dict, tmp_path: Path
) -> None:
    snap, upd = t_depth_files(tmp_path, usdm_ws)
    result = depth_deltas([parse_depth(upd), parse_depth(snap)])  # order of files is irrelevant
    bids, asks, applied = reference_book(usdm_ws)
    assert result.gaps == 0 and result.applied == applied > 100
    assert result.dropped == len(usdm_ws["depth"]) - applied
    d = result.deltas
    assert int((d.flags & F_LAST).astype(bool).sum()) == applied + 1  # one per message
    assert set(np.unique(d.action).tolist()) == {ADD, UPDATE, DELETE, CLEAR}
    side, price, size = book_state(d)
    assert dict(zip(price[side == BUY].tolist(), size[side == BUY].tolist(), strict=True)) == bids
    assert dict(zip(price[side == SELL].tolist(), size[side == SELL].tolist(), strict=True)) == asks

    report, _ = import_binance([snap, upd], tmp_path / "cat", name="ws", progress=False)
    assert report.gaps == 0 and report.deltas == len(d)
    deltas = MarketCatalog(tmp_path / "cat").nautilus.order_book_deltas(
        instrument_ids=["BTCUSDT-PERP.BINANCE"]
    )
    assert len(deltas) == len(d)


def test_depth_dropped_message_is_a_gap_and_book_waits_for_next_snapshot(
    usdm_ws: dict, tmp_path: Path
) -> None:
    full = depth_deltas([parse_depth(p) for p in t_depth_files(tmp_path, usdm_ws)])
    gap_dir = tmp_path / "gap"
    gap_dir.mkdir()
    _, _, applied = reference_book(usdm_ws)
    drop = len(usdm_ws["depth"]) - applied + 20  # the 21st applied message
    snap, upd = t_depth_files(gap_dir, usdm_ws, drop=drop)
    gapped = depth_deltas([parse_depth(snap), parse_depth(upd)])
    assert gapped.gaps == 1 and gapped.resyncs == 0
    assert gapped.applied == 20  # messages after the gap are not applied
    assert len(gapped.deltas) < len(full.deltas)
    assert gapped.deltas.action[-1] == CLEAR and gapped.deltas.flags[-1] == F_LAST

    # a later snapshot resyncs: updates after it apply again
    snap2 = write_variant(
        gap_dir / "BTCUSDT_T_DEPTH_2024-08-08_depth_snap2.csv",
        [
            f"BTCUSDT,{usdm_ws['depth'][-5]['T']},{usdm_ws['depth'][-5]['u']},"
            f"{usdm_ws['depth'][-5]['u']},b,snap,61000.0,1.0,-1"
        ],
        DEPTH_HEADER,
    )
    again = depth_deltas([parse_depth(snap), parse_depth(upd), parse_depth(snap2)])
    # the diff ending at the new snapshot's id and the 4 after it apply again
    assert again.gaps == 1 and again.resyncs == 1 and again.applied == 20 + 5


# -- klines ------------------------------------------------------------------------------------


def test_klines_real_fixture_to_nautilus_bars(public_dir: Path, tmp_path: Path) -> None:
    files = [public_dir / "ADABTC-1m-2021-11-27.csv", public_dir / "ADABTC-1m-2021-11-28.csv"]
    report, _ = import_binance(files, tmp_path / "cat", name="k", progress=False)
    assert report.extra["bars"] == 21 and report.events == 21
    assert report.symbol_days == ["ADABTC.BINANCE/2021-11-27", "ADABTC.BINANCE/2021-11-28"]
    cat = MarketCatalog(tmp_path / "cat")
    bar_type = BarType.from_str("ADABTC.BINANCE-1-MINUTE-LAST-EXTERNAL")
    bars = cat.nautilus.query(BinanceBar, identifiers=[str(bar_type)])
    assert len(bars) == 21 and bars[0].bar_type == bar_type
    first = bars[0]
    assert isinstance(first, Bar)  # what the Binance adapter delivers live, extras kept
    assert str(first.open) == "0.00002853" and str(first.high) == "0.00002854"
    assert first.volume.as_double() == 36304.2
    assert first.ts_event == 1_637_971_259_999_000_000  # the kline's close time
    # 1637971200000,...,36304.20000000,1637971259999,1.03547608,79,19523.00000000,0.55694227,0
    assert first.count == 79 and first.taker_buy_base_volume == Decimal("19523.0")
    assert first.quote_volume == Decimal("1.03547608")
    assert first.taker_buy_quote_volume == Decimal("0.55694227")
    (inst,) = cat.nautilus.instruments(instrument_ids=["ADABTC.BINANCE"])
    assert str(inst.price_increment) == "0.00000001"

    # re-import replaces the day's file instead of duplicating it
    import_binance(files[:1], tmp_path / "cat", name="k2", progress=False)
    assert len(cat.nautilus.query(BinanceBar, identifiers=[str(bar_type)])) == 21


def test_klines_header_and_zip_variants(public_dir: Path, tmp_path: Path) -> None:
    lines = (public_dir / "ADABTC-1m-2021-11-27.csv").read_text().split()
    head = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    )
    a = parse_klines(public_dir / "ADABTC-1m-2021-11-27.csv")
    b = parse_klines(write_variant(tmp_path / "ADABTC-1m-2021-11-27.zip", lines, head))
    assert len(a) == 10
    for name in ("close", "open_time", "count", "taker_buy_volume", "quote_volume"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.count[0] == 79 and a.taker_buy_volume[0] == 19523.0


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [(9, "99999999.0", "taker_buy_volume"), (9, "-1.0", "taker_buy_volume"), (8, "-3", "count")],
)
def test_bad_kline_extras_name_the_line_and_column(
    public_dir: Path, tmp_path: Path, column: int, value: str, message: str
) -> None:
    lines = (public_dir / "ADABTC-1m-2021-11-27.csv").read_text().split()
    fields = lines[3].split(",")
    fields[column] = value
    lines[3] = ",".join(fields)
    path = write_variant(tmp_path / "ADABTC-1m-2021-11-27.csv", lines)
    with pytest.raises(DataFileError, match=rf"ADABTC-1m-2021-11-27.csv:4: .*'{message}'"):
        parse_klines(path)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_field", "value", "column"),
    [(1, "abc", "price"), (1, "", "price"), (2, "nan", "qty"), (1, "-5.0", "price")],
)
def test_corrupt_row_names_file_line_column_and_writes_nothing(
    real_trades: dict, tmp_path: Path, bad_field: int, value: str, column: str
) -> None:
    lines = trade_lines(real_trades, 20, spot=True)
    fields = lines[11].split(",")
    fields[bad_field] = value
    lines[11] = ",".join(fields)
    bad = write_variant(tmp_path / "BTCUSDT-trades-2021-01-08.zip", lines)
    good = write_variant(tmp_path / "ETHUSDT-trades-2021-01-08.csv", lines[:5])
    out = tmp_path / "cat"
    with pytest.raises(DataFileError) as err:
        import_binance([good, bad], out, progress=False)
    assert f"{bad}:12" in str(err.value) and repr(column) in str(err.value)
    assert catalog_files(out) == [] and not out.exists()


def test_wrong_column_count_names_the_line(public_dir: Path, tmp_path: Path) -> None:
    lines = (public_dir / "ADABTC-1m-2021-11-27.csv").read_text().split()
    lines[6] = lines[6].rsplit(",", 1)[0]
    path = write_variant(tmp_path / "ADABTC-1m-2021-11-27.csv", lines)
    with pytest.raises(DataFileError, match=r"ADABTC-1m-2021-11-27.csv:7: expected 12 columns"):
        parse_klines(path)


def test_cli_prints_report_path(public_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cat"
    result = CliRunner().invoke(
        data_group,
        ["import-binance", str(public_dir / "btcusdt-depth-snap.csv"), "--out", str(out),
         "--name", "cli"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = out / "reports" / "cli.json"
    assert result.output.strip().splitlines()[-1] == str(path)
    assert json.loads(path.read_text())["deltas"] == 101

    bad = CliRunner().invoke(
        data_group, ["import-binance", str(public_dir / "README-none.csv"), "--out", str(out)]
    )
    assert bad.exit_code != 0


def test_unknown_symbol_names_the_exchange_info_and_writes_nothing(
    real_trades: dict, tmp_path: Path
) -> None:
    path = write_variant(
        tmp_path / "FOOUSDT-trades-2021-01-08.csv", trade_lines(real_trades, 5, spot=True)
    )
    out = tmp_path / "cat"
    result = CliRunner().invoke(data_group, ["import-binance", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert "FOOUSDT" in result.output and "spot.json" in result.output
    assert not out.exists()


def test_t_depth_import_replays_in_a_backtest_engine(usdm_ws: dict, tmp_path: Path) -> None:
    report, _ = import_binance(
        list(t_depth_files(tmp_path, usdm_ws)), tmp_path / "cat", name="bt", progress=False
    )
    cat = MarketCatalog(tmp_path / "cat")
    inst = cat.instrument("BTCUSDT-PERP")
    deltas = cat.nautilus.order_book_deltas(instrument_ids=[inst.id.value])
    with replayed(inst, "perp", deltas) as (probe, book):
        ev = cat.load("BTCUSDT-PERP", datetime.date(2024, 8, 8)).deltas
        assert probe.deltas == len(ev) == report.deltas
        assert probe.batches == int((ev.flags & F_LAST).astype(bool).sum())
        bids, asks, _ = reference_book(usdm_ws)
        assert book.best_bid_price().as_double() == max(bids)
        assert book.best_ask_size().as_double() == asks[min(asks)]
        assert (len(book.bids()), len(book.asks())) == (len(bids), len(asks))
