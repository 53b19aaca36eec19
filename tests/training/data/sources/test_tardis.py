"""Tardis CSV import, on Tardis-format files built from the real Binance spot WS recording."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.replay import replayed
from training.cli.data import data as data_group
from training.data.catalog import MarketCatalog
from training.data.catalog import book_state
from training.data.columns import ADD
from training.data.columns import BUY
from training.data.columns import BUYER
from training.data.columns import CLEAR
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.columns import SELL
from training.data.columns import SELLER
from training.data.csv import DataFileError
from training.data.sources.tardis import import_tardis
from training.data.sources.tardis import parse_book
from training.data.sources.tardis import parse_trades
from training.errors import BadInputError

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"


@pytest.fixture(scope="session")
def spot_ws(ws_dir: Path) -> dict[str, list]:
    """Snapshot, the depth diffs that follow it (Binance spot rules) and trades, with recv µs."""
    snapshot, depth, trades = None, [], []
    with gzip.open(ws_dir / "spot_btcusdt_20240808.gz", "rt") as f:
        for lineno, line in enumerate(f):
            if lineno > 4000:
                break
            recv, raw = line.split(" ", 1)
            msg = json.loads(raw)
            recv_us = int(recv) // 1000
            if "lastUpdateId" in msg:
                snapshot = (recv_us, msg)
            elif msg["stream"].endswith("@trade"):
                trades.append((recv_us, msg["data"]))
            elif (
                "depth" in msg["stream"]
                and snapshot is not None
                and msg["data"]["u"] > snapshot[1]["lastUpdateId"]
            ):
                depth.append((recv_us, msg["data"]))
    assert snapshot is not None and len(depth) > 100 and len(trades) > 500
    return {"snapshot": snapshot, "depth": depth, "trades": trades}


def snapshot_rows(exchange: str, recv_us: int, snap: dict, ts_us: int) -> list[str]:
    rows = [f"{exchange},BTCUSDT,{ts_us},{recv_us},true,bid,{p},{q}" for p, q in snap["bids"]]
    rows += [f"{exchange},BTCUSDT,{ts_us},{recv_us},true,ask,{p},{q}" for p, q in snap["asks"]]
    return rows


def book_rows(ws: dict, exchange: str = "binance", resnap_at: int | None = None) -> list[str]:
    """Tardis incremental_book_L2 rows: the snapshot, then each diff's levels (µs stamps)."""
    recv, snap = ws["snapshot"]
    first_e = ws["depth"][0][1]["E"] * 1000
    rows = snapshot_rows(exchange, recv, snap, first_e)
    for i, (recv_us, m) in enumerate(ws["depth"]):
        if i == resnap_at:  # a reconnect: Tardis writes a fresh snapshot (here: the same levels)
            rows += snapshot_rows(exchange, recv_us, snap, m["E"] * 1000)
        for side, levels in (("bid", m["b"]), ("ask", m["a"])):
            rows += [
                f"{exchange},BTCUSDT,{m['E'] * 1000},{recv_us},false,{side},{p},{q}"
                for p, q in levels
            ]
    return rows


def trade_rows(ws: dict, exchange: str = "binance") -> list[str]:
    return [
        f"{exchange},BTCUSDT,{m['T'] * 1000},{recv},{m['t']},{'sell' if m['m'] else 'buy'},"
        f"{m['p']},{m['q']}"
        for recv, m in ws["trades"]
    ]


def write(path: Path, header: str, rows: list[str]) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def reference_book(ws: dict) -> tuple[dict[float, float], dict[float, float]]:
    _, snap = ws["snapshot"]
    bids = {float(p): float(q) for p, q in snap["bids"]}
    asks = {float(p): float(q) for p, q in snap["asks"]}
    for _, m in ws["depth"]:
        for book, levels in ((bids, m["b"]), (asks, m["a"])):
            for p, q in levels:
                if float(q) == 0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
    return bids, asks


def test_book_plain_and_gzip_rebuild_the_real_book(spot_ws: dict, tmp_path: Path) -> None:
    rows = book_rows(spot_ws)
    plain = write(
        tmp_path / "binance_incremental_book_L2_2024-08-08_BTCUSDT.csv", BOOK_HEADER, rows
    )
    gz = write(
        tmp_path / "binance_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz", BOOK_HEADER, rows
    )
    (a,), (b,) = parse_book(plain), parse_book(gz)
    assert (a.market, a.symbol, a.resyncs) == ("spot", "BTCUSDT", 0)
    d = a.events.deltas
    for col in ("ts_event", "ts_init", "action", "side", "price", "size", "flags"):
        np.testing.assert_array_equal(getattr(d, col), getattr(b.events.deltas, col))

    n_snap = len(spot_ws["snapshot"][1]["bids"]) + len(spot_ws["snapshot"][1]["asks"])
    assert len(d) == len(rows) + 1  # plus the CLEAR
    assert d.action[0] == CLEAR and (d.action[1 : n_snap + 1] == ADD).all()
    assert (d.flags[: n_snap + 1] & F_SNAPSHOT).all() and not (
        d.flags[n_snap + 1 :] & F_SNAPSHOT
    ).any()
    # one F_LAST per exchange message: the snapshot, then each diff
    assert int((d.flags & F_LAST).astype(bool).sum()) == 1 + len(spot_ws["depth"])
    assert d.ts_event[-1] == spot_ws["depth"][-1][1]["E"] * 1_000_000
    assert d.ts_init[-1] == spot_ws["depth"][-1][0] * 1000
    bids, asks = reference_book(spot_ws)
    side, price, size = book_state(d)
    assert dict(zip(price[side == BUY].tolist(), size[side == BUY].tolist(), strict=True)) == bids
    assert dict(zip(price[side == SELL].tolist(), size[side == SELL].tolist(), strict=True)) == asks


def test_snapshot_mid_stream_is_a_resync(spot_ws: dict, tmp_path: Path) -> None:
    path = write(
        tmp_path / "binance_incremental_book_L2.csv", BOOK_HEADER, book_rows(spot_ws, resnap_at=50)
    )
    (part,) = parse_book(path)
    d = part.events.deltas
    assert part.resyncs == 1
    clears = np.flatnonzero(d.action == CLEAR)
    assert len(clears) == 2 and d.ts_event[clears[1]] == spot_ws["depth"][50][1]["E"] * 1_000_000


def test_trades_and_import_via_cli(spot_ws: dict, tmp_path: Path) -> None:
    book = write(tmp_path / "binance_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz", BOOK_HEADER,
                 book_rows(spot_ws))  # fmt: skip
    trades = write(tmp_path / "binance_trades_2024-08-08_BTCUSDT.csv.gz", TRADES_HEADER,
                   trade_rows(spot_ws))  # fmt: skip
    (part,) = parse_trades(trades)
    t = part.events.trades
    src = [m for _, m in spot_ws["trades"]]
    assert len(t) == len(src)
    np.testing.assert_array_equal(t.trade_id, [m["t"] for m in src])
    np.testing.assert_array_equal(t.aggressor, [SELLER if m["m"] else BUYER for m in src])
    np.testing.assert_array_equal(t.price, [float(m["p"]) for m in src])
    assert t.ts_event[0] == src[0]["T"] * 1_000_000

    out = tmp_path / "cat"
    result = CliRunner().invoke(
        data_group, ["import-tardis", str(book), str(trades), "--out", str(out), "--name", "td"]
    )
    assert result.exit_code == 0, result.output
    path = out / "reports" / "td.json"
    assert result.output.strip().splitlines()[-1] == str(path)
    report = json.loads(path.read_text())
    assert report["trades"] == len(src) and report["deltas"] == len(book_rows(spot_ws)) + 1
    assert report["symbol_days"] == ["BTCUSDT.BINANCE/2024-08-08"] and report["gaps"] == 0
    cat = MarketCatalog(out)
    back = cat.load("BTCUSDT", datetime.date(2024, 8, 8))
    assert len(back.trades) == len(src)
    assert len(cat.nautilus.order_book_deltas(instrument_ids=["BTCUSDT.BINANCE"])) == len(
        back.deltas
    )


def test_binance_futures_maps_to_perpetual(spot_ws: dict, tmp_path: Path) -> None:
    path = write(tmp_path / "binance-futures_trades.csv", TRADES_HEADER,
                 trade_rows(spot_ws, "binance-futures")[:100])  # fmt: skip
    # spot prices have 2 decimals; the perpetual's tick is 0.1, so the import widens it
    report, _ = import_tardis([path], tmp_path / "cat", progress=False)
    assert report.instrument_ids == ["BTCUSDT-PERP.BINANCE"] and report.trades == 100
    assert report.extra["precision_widened"]["BTCUSDT-PERP.BINANCE"]["price_precision"] == [1, 2]


@pytest.mark.parametrize(
    ("column", "value"),
    [("side", "bidx"), ("amount", "-1"), ("timestamp", "12x"), ("exchange", "ftx")],
)
def test_corrupt_row_names_file_line_and_writes_nothing(
    spot_ws: dict, tmp_path: Path, column: str, value: str
) -> None:
    rows = book_rows(spot_ws)[:300]
    fields = rows[199].split(",")
    fields[BOOK_HEADER.split(",").index(column)] = value
    rows[199] = ",".join(fields)
    good = write(tmp_path / "binance_trades.csv", TRADES_HEADER, trade_rows(spot_ws)[:10])
    bad = write(tmp_path / "binance_incremental_book_L2.csv.gz", BOOK_HEADER, rows)
    out = tmp_path / "cat"
    with pytest.raises(DataFileError) as err:
        import_tardis([good, bad], out, progress=False)
    assert f"{bad}:201" in str(err.value) and repr(column) in str(err.value)
    assert not out.exists()


def test_tardis_book_replays_in_a_backtest_engine(spot_ws: dict, tmp_path: Path) -> None:
    """UPDATE of a level the book lacks must add it in Nautilus too (Tardis has no ADD)."""
    path = write(tmp_path / "binance_incremental_book_L2.csv", BOOK_HEADER, book_rows(spot_ws))
    import_tardis([path], tmp_path / "cat", progress=False)
    cat = MarketCatalog(tmp_path / "cat")
    inst = cat.instrument("BTCUSDT")
    deltas = cat.nautilus.order_book_deltas(instrument_ids=[inst.id.value])
    with replayed(inst, "spot", deltas) as (_, book):
        bids, asks = reference_book(spot_ws)
        assert book.best_bid_price().as_double() == max(bids)
        assert book.best_ask_price().as_double() == min(asks)
        assert (len(book.bids()), len(book.asks())) == (len(bids), len(asks))


def test_corrupt_row_error_carries_its_line_and_column(spot_ws: dict, tmp_path: Path) -> None:
    rows = book_rows(spot_ws)[:50]
    fields = rows[9].split(",")
    fields[BOOK_HEADER.split(",").index("amount")] = "-1"
    rows[9] = ",".join(fields)
    bad = write(tmp_path / "binance_incremental_book_L2.csv", BOOK_HEADER, rows)
    with pytest.raises(DataFileError) as err:
        import_tardis([bad], tmp_path / "cat", progress=False)
    assert (err.value.line, err.value.field, err.value.path) == (11, "amount", bad)
    assert isinstance(err.value, BadInputError)
