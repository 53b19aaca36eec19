"""`nhmm data import-ws` on the real Binance recordings: sequencing, book check, catalog, replay."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from nautilus_trader.backtest.node import BacktestNode
from nautilus_trader.config import BacktestDataConfig
from nautilus_trader.config import BacktestEngineConfig
from nautilus_trader.config import BacktestRunConfig
from nautilus_trader.config import BacktestVenueConfig
from nautilus_trader.config import DataEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.identifiers import InstrumentId

from tests.replay import replayed
from training.cli.data import import_ws as cli
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.catalog import book_state
from training.data.columns import CLEAR
from training.data.columns import F_LAST
from training.data.columns import F_SNAPSHOT
from training.data.report import ImportReport
from training.data.sources.binance_ws import detect_market
from training.data.sources.binance_ws import import_ws

SPOT = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
USDM = "usdm_btcusdt_20240808.gz"
DAY8, DAY9 = datetime.date(2024, 8, 8), datetime.date(2024, 8, 9)


@pytest.fixture(scope="session")
def spot_import(
    ws_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ImportReport, Path]:
    out = tmp_path_factory.mktemp("spot_catalog")
    return import_ws([ws_dir / f for f in SPOT], out)


@pytest.fixture(scope="session")
def usdm_import(
    ws_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ImportReport, Path]:
    out = tmp_path_factory.mktemp("usdm_catalog")
    return import_ws([ws_dir / USDM], out)


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def _write_gz(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as f:
        f.writelines(lines)
    return path


def test_spot_two_files_are_one_gap_free_stream(spot_import: tuple[ImportReport, Path]) -> None:
    report, path = spot_import
    assert path.name == f"{report.name}.json" and path.parent.name == "reports"
    assert json.loads(path.read_text()) == json.loads(report.to_json())
    assert report.gaps == 0 and report.resyncs == 0
    assert report.bbo_mismatches == 0
    assert 500 <= report.bbo_checks <= 5000  # 1072 measured
    msgs = report.extra["messages"]
    assert (msgs["depth"], msgs["trade"], msgs["bookTicker"], msgs["snapshot"]) == (
        3451 + 3044,
        9757 + 10147,
        28040 + 45134,
        1,
    )
    assert report.trades == 19904 and report.quotes == 73174
    assert report.events == report.deltas + report.trades + report.quotes
    assert report.symbol_days == ["BTCUSDT.BINANCE/2024-08-08", "BTCUSDT.BINANCE/2024-08-09"]
    assert report.instrument_ids == ["BTCUSDT.BINANCE"]
    assert report.first_ts_event is not None and report.last_ts_event is not None
    d = json.loads(path.read_text())
    assert d["first_ts_event_iso"].startswith("2024-08-08T23:54:1")
    assert d["last_ts_event_iso"].startswith("2024-08-09T00:05:0")
    sym = report.extra["symbols"]["BTCUSDT.BINANCE"]
    assert sym["snapshots"] == 1 and sym["size_precision"] == 6  # data finer than stepSize 1e-5
    assert sym["size_increment"] == "0.000010"


def test_usdm_recording(usdm_import: tuple[ImportReport, Path]) -> None:
    report, _ = usdm_import
    assert report.extra["market"] == "usdm"
    assert report.instrument_ids == ["BTCUSDT-PERP.BINANCE"]
    assert report.gaps == 0 and report.resyncs == 0 and report.bbo_mismatches == 0
    assert 300 <= report.bbo_checks <= 5000  # 629 measured
    msgs = report.extra["messages"]
    assert (msgs["depth"], msgs["trade"], msgs["bookTicker"]) == (6551, 21313, 66089)
    # the recording's last second of exchange time is past midnight: a small second partition
    assert report.symbol_days == [
        "BTCUSDT-PERP.BINANCE/2024-08-08",
        "BTCUSDT-PERP.BINANCE/2024-08-09",
    ]
    cat = MarketCatalog(report.extra["catalog"])
    d9 = cat.load("BTCUSDT-PERP", DAY9).deltas
    assert d9.action[0] == CLEAR and int(np.argmax(d9.flags & F_LAST)) > 1000
    sym = report.extra["symbols"]["BTCUSDT-PERP.BINANCE"]
    assert (sym["price_precision"], sym["size_precision"]) == (1, 3)


def test_market_detection(ws_dir: Path) -> None:
    assert detect_market(ws_dir / SPOT[0]) == "spot"
    assert detect_market(ws_dir / USDM) == "usdm"


def test_each_day_partition_opens_with_a_full_book(spot_import: tuple[ImportReport, Path]) -> None:
    cat = MarketCatalog(spot_import[0].extra["catalog"])
    d8, d9 = cat.load("BTCUSDT", DAY8).deltas, cat.load("BTCUSDT", DAY9).deltas
    for d in (d8, d9):
        assert d.action[0] == CLEAR and d.flags[0] & F_SNAPSHOT
        n_snap = int(np.argmax(d.flags & F_LAST)) + 1
        assert n_snap > 1000  # a real book, not an empty CLEAR
        assert (d.flags[:n_snap] & F_SNAPSHOT).all()
        assert (np.diff(d.ts_init) >= 0).all()
        assert d.flags[-1] & F_LAST
    assert d9.ts_event[0] >= 1_723_161_600_000_000_000  # opens on 2024-08-09 exchange time
    # the day-9 snapshot is the book at the end of day 8
    snap9 = d9.take(slice(0, int(np.argmax(d9.flags & F_LAST)) + 1))
    for a, b in zip(book_state(d8), book_state(snap9), strict=True):
        assert np.array_equal(a, b)


def test_load_equals_nautilus_query(spot_import: tuple[ImportReport, Path]) -> None:
    cat = MarketCatalog(spot_import[0].extra["catalog"])
    sd = SymbolDay("BTCUSDT.BINANCE", DAY9)
    ev = cat.load("BTCUSDT", DAY9)
    files = cat.files(sd)
    nd = cat.nautilus.query(OrderBookDelta, files=[str(files["order_book_deltas"])])
    assert len(nd) == len(ev.deltas)
    assert np.array_equal([x.order.price.as_double() for x in nd], ev.deltas.price)
    assert np.array_equal([x.order.size.as_double() for x in nd], ev.deltas.size)
    assert np.array_equal([x.ts_event for x in nd], ev.deltas.ts_event)
    assert np.array_equal([x.ts_init for x in nd], ev.deltas.ts_init)
    assert np.array_equal([int(x.action) for x in nd], ev.deltas.action)
    assert np.array_equal([int(x.order.side) for x in nd], ev.deltas.side)
    assert np.array_equal([x.flags for x in nd], ev.deltas.flags)
    assert np.array_equal([x.sequence for x in nd], ev.deltas.sequence)
    # the Rust-backed queries read every partition of the catalog
    all_trades = cat.nautilus.trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    both = [cat.load("BTCUSDT", d).trades for d in (DAY8, DAY9)]
    assert np.array_equal(
        [t.price.as_double() for t in all_trades], np.concatenate([b.price for b in both])
    )
    assert [int(t.trade_id.value) for t in all_trades] == np.concatenate(
        [b.trade_id for b in both]
    ).tolist()
    quotes = cat.nautilus.query(QuoteTick, files=[str(files["quote_tick"])])
    assert np.array_equal([q.ask_size.as_double() for q in quotes], ev.quotes.ask_size)
    trades = cat.nautilus.query(TradeTick, files=[str(files["trade_tick"])])
    assert [int(t.aggressor_side) for t in trades] == ev.trades.aggressor.tolist()


def test_a_day_replays_alone_in_a_backtest_engine(spot_import: tuple[ImportReport, Path]) -> None:
    cat = MarketCatalog(spot_import[0].extra["catalog"])
    inst = cat.instrument("BTCUSDT")
    sd = SymbolDay(inst.id.value, DAY9)
    deltas = cat.nautilus.query(OrderBookDelta, files=[str(cat.files(sd)["order_book_deltas"])])
    with replayed(inst, "spot", deltas) as (probe, book):
        ev = cat.load("BTCUSDT", DAY9)
        assert probe.deltas == len(ev.deltas)
        assert probe.batches == int((ev.deltas.flags & F_LAST).astype(bool).sum())
        side, price, size = book_state(ev.deltas)
        assert book.best_bid_price().as_double() == price[side == 1][0]
        assert book.best_bid_size().as_double() == size[side == 1][0]
        assert book.best_ask_price().as_double() == price[side == 2][0]
        assert book.best_ask_size().as_double() == size[side == 2][0]
        assert (len(book.bids()), len(book.asks())) == ((side == 1).sum(), (side == 2).sum())


def test_dropped_depth_message_is_a_gap(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir / SPOT[0])
    depth_idx = [i for i, ln in enumerate(lines) if b"@depth" in ln[:80]]
    dropped = depth_idx[1000]
    src = _write_gz(tmp_path / "gap.gz", lines[:dropped] + lines[dropped + 1 :])
    report, _ = import_ws([src], tmp_path / "cat")
    assert report.gaps == 1 and report.resyncs == 0  # no later snapshot to resync from
    sym = report.extra["symbols"]["BTCUSDT.BINANCE"]
    assert sym["depth_applied"] == 1000 - sym["depth_dropped"]
    assert sym["depth_untrusted"] > 2000  # never silently carried on
    d = MarketCatalog(tmp_path / "cat").load("BTCUSDT", DAY8).deltas
    assert d.action[-1] == CLEAR and d.flags[-1] == F_LAST  # the book is withdrawn at the gap
    assert report.bbo_checks < 400 and report.bbo_mismatches == 0


def test_corrupt_line_names_file_and_line_and_writes_nothing(ws_dir: Path, tmp_path: Path) -> None:
    lines = _lines(ws_dir / SPOT[0])[:2000]
    lines[1499] = lines[1499][: len(lines[1499]) // 2] + b"\n"
    src = _write_gz(tmp_path / "corrupt.gz", lines)
    out = tmp_path / "cat"
    with pytest.raises(ValueError, match=rf"{src}:1500: "):
        import_ws([src], out)
    assert not (out / "data").exists() and not (out / "partitions").exists()
    result = CliRunner().invoke(cli, [str(src), "--out", str(out), "--no-progress"])
    assert result.exit_code != 0 and f"{src}:1500" in result.output


def test_cli_prints_report_path(ws_dir: Path, tmp_path: Path) -> None:
    src = _write_gz(tmp_path / "head.gz", _lines(ws_dir / SPOT[0])[:3000])
    out = tmp_path / "cat"
    result = CliRunner().invoke(
        cli, [str(src), "--out", str(out), "--name", "head", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    assert path == (out / "reports" / "head.json").resolve()
    d = json.loads(path.read_text())
    assert d["name"] == "head" and d["gaps"] == 0 and d["events"] > 0
    assert d["symbol_days"] == ["BTCUSDT.BINANCE/2024-08-08"]


def test_backtest_node_replays_the_catalog(spot_import: tuple[ImportReport, Path]) -> None:
    cat = MarketCatalog(spot_import[0].extra["catalog"])
    iid = InstrumentId.from_str("BTCUSDT.BINANCE")
    cfg = BacktestRunConfig(
        engine=BacktestEngineConfig(
            data_engine=DataEngineConfig(buffer_deltas=True),
            logging=LoggingConfig(log_level="ERROR"),
        ),
        venues=[
            BacktestVenueConfig(
                name="BINANCE",
                oms_type="NETTING",
                account_type="CASH",
                starting_balances=["1000000 USDT", "10 BTC"],
                book_type="L2_MBP",
            )
        ],
        data=[
            BacktestDataConfig(catalog_path=str(cat.root), data_cls=cls, instrument_id=iid)
            for cls in (OrderBookDelta, TradeTick)
        ],
        dispose_on_completion=True,
    )
    (result,) = BacktestNode([cfg]).run()
    n = sum(
        len(cat.load("BTCUSDT", d).deltas) + len(cat.load("BTCUSDT", d).trades)
        for d in (DAY8, DAY9)
    )
    assert result.iterations == n  # every delta (incl. the day-start snapshot) and trade


def test_widened_precision_is_in_the_report(spot_import: tuple[ImportReport, Path]) -> None:
    report, _ = spot_import
    # the recording's sizes are finer than today's stepSize 1e-5: the one fit widened it
    assert report.extra["precision_widened"] == {"BTCUSDT.BINANCE": {"size_precision": [5, 6]}}
