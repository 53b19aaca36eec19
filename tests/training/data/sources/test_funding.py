"""Perp funding through every importer into the catalog: ``@markPrice`` recordings, Binance
public ``fundingRate`` files and Tardis ``derivative_ticker`` CSV, each checked against its input
lines; bad funding values name the line and the field."""

from __future__ import annotations

import datetime
import gzip
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from tests.training.data import funding_setup
from training.cli.data import data as data_group
from training.data.catalog import MarketCatalog
from training.data.csv import DataFileError
from training.data.sources.binance_ws import import_ws
from training.errors import BadInputError

DAY8 = datetime.date(2024, 8, 8)
DAY9 = datetime.date(2024, 8, 9)
MS = 1_000_000
PERP = "BTCUSDT-PERP.BINANCE"


@pytest.fixture(scope="module")
def marked(ws_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The markPrice fixture (:mod:`tests.training.data.funding_setup`) imported once."""
    root = tmp_path_factory.mktemp("funding")
    path, frames = funding_setup.build(ws_dir, root)
    report, _ = import_ws([path], root / "catalog", name="marked")
    return {"path": path, "frames": frames, "report": report, "catalog": root / "catalog"}


def test_ws_mark_price_frames_become_funding_updates(marked: dict) -> None:
    cat = MarketCatalog(marked["catalog"])
    frames = marked["frames"]
    got = cat.load_funding("BTCUSDT-PERP", DAY8)
    assert len(got) == len(frames) == 60
    for u, (e_ms, recv, r, t_ms) in zip(got, frames, strict=True):
        assert str(u.instrument_id) == PERP
        assert (u.ts_event, u.ts_init, u.next_funding_ns) == (e_ms * MS, recv, t_ms * MS)
        assert Decimal(str(u.rate)) == Decimal(r)
    assert {str(u.rate) for u in got} == {funding_setup.RATE_1, funding_setup.RATE_2}
    # Nautilus's own catalog reads the same objects
    assert cat.nautilus.funding_rates(instrument_ids=[PERP]) == got
    report = marked["report"]
    assert report.extra["messages"]["markPrice"] == 60
    assert report.extra["symbols"][PERP]["funding_updates"] == 60
    assert report.symbol_days == [f"{PERP}/2024-08-08"]
    assert cat.load_funding("BTCUSDT-PERP", DAY9) == []


def test_bad_mark_price_rate_names_line_and_field_and_writes_nothing(
    marked: dict, tmp_path: Path
) -> None:
    lines = gzip.decompress(marked["path"].read_bytes()).splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if b"markPrice" in ln and i > 100)
    lines[at] = lines[at].replace(b'"r":"0.0001', b'"r":"x.0001')
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(DataFileError) as err:
        import_ws([bad], tmp_path / "cat")
    assert err.value.line == at + 1 and err.value.field == "r"
    assert f"bad.gz:{at + 1}: markPrice field 'r'" in str(err.value)
    assert not (tmp_path / "cat").exists()
    lines[at] = lines[at].replace(b'"r":"x.0001', b'"r":0.0001')  # a number, not Binance's text
    bad.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(DataFileError, match=rf"bad.gz:{at + 1}: .*\$\.data\.r"):
        import_ws([bad], tmp_path / "cat")


def test_catalog_refuses_funding_of_a_spot_instrument(tmp_path: Path) -> None:
    spot = TestInstrumentProvider.btcusdt_binance()
    update = FundingRateUpdate(spot.id, Decimal("0.0001"), 1, 1)
    with pytest.raises(BadInputError, match="not a perpetual") as err:
        MarketCatalog(tmp_path).write_data(spot, [update])
    assert err.value.field == "funding"
    assert not list(tmp_path.rglob("*.parquet"))


# Binance public data: data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-08.zip
FUNDING_CSV = (
    "calc_time,funding_interval_hours,last_funding_rate\n"
    "1723075200000,8,0.00010000\n"
    "1723104000000,8,0.00007213\n"
    "1723132800001,8,-0.00002150\n"
    "1723161600000,8,0.00003862\n"
)


def _zipped(path: Path, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(path.with_suffix(".csv").name, text)
    return path


def test_binance_public_funding_rate_one_update_per_settlement(tmp_path: Path) -> None:
    src = _zipped(tmp_path / "BTCUSDT-fundingRate-2024-08.zip", FUNDING_CSV)
    out = tmp_path / "cat"
    result = CliRunner().invoke(data_group, ["import-binance", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 funding updates" in result.output
    cat = MarketCatalog(out)
    day8, day9 = cat.load_funding("BTCUSDT", DAY8), cat.load_funding("BTCUSDT", DAY9)
    assert [len(day8), len(day9)] == [3, 1]
    rows = [ln.split(",") for ln in FUNDING_CSV.splitlines()[1:]]
    for u, (calc, hours, rate) in zip(day8 + day9, rows, strict=True):
        assert str(u.instrument_id) == PERP
        assert u.ts_event == u.ts_init == int(calc) * MS
        assert u.interval == int(hours) * 60
        assert u.next_funding_ns == int(calc) * MS + int(hours) * 3600 * 10**9
        assert str(u.rate) == rate
    # the cost model settles each row at its funding time (the 16:00 row is stamped 1 ms late)
    from training.costs import FUNDING_PERIOD_NS
    from training.costs import CostModel

    settled = CostModel.tier("usdm").with_funding(day8 + day9).funding_rates
    eight_h = [int(c) * MS // FUNDING_PERIOD_NS * FUNDING_PERIOD_NS for c, _, _ in rows]
    assert settled == tuple(zip(eight_h, (1.0, 0.7213, -0.215, 0.3862), strict=True))


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("1723104000000,8,abc", "last_funding_rate"),
        ("1723104000000,0,0.0001", "funding_interval_hours"),
    ],
)
def test_bad_funding_rate_row_names_file_line_and_column(
    tmp_path: Path, row: str, column: str
) -> None:
    text = "calc_time,funding_interval_hours,last_funding_rate\n1723075200000,8,0.0001\n" + row
    src = tmp_path / "BTCUSDT-fundingRate-2024-08.csv"
    src.write_text(text + "\n")
    from training.data.sources.binance_public import import_binance

    with pytest.raises(DataFileError) as err:
        import_binance([src], tmp_path / "cat", progress=False)
    assert err.value.line == 3 and err.value.field == column
    assert str(err.value).startswith(f"{src}:3: column {column!r}")
    assert not (tmp_path / "cat").exists()


TICKER_HEADER = (
    "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
    "predicted_funding_rate,open_interest,last_price,index_price,mark_price"
)
TICKER_ROWS = [  # Tardis derivative_ticker, binance-futures: funding empty until known
    "binance-futures,BTCUSDT,1723161300000000,1723161300041000,,,,81234.5,61800.1,61796.9,61800.0",
    "binance-futures,BTCUSDT,1723161301000000,1723161301038000,1723161600000000,0.00010000,,"
    "81234.5,61800.2,61797.0,61800.1",
    "binance-futures,BTCUSDT,1723161302000000,1723161302039000,1723161600000000,0.00010000,,"
    "81235.5,61800.4,61797.2,61800.3",
    "binance-futures,BTCUSDT,1723161303000000,1723161303040000,1723161600000000,0.00012840,,"
    "81235.5,61801.0,61797.9,61801.2",
]


def test_tardis_derivative_ticker_one_update_per_rate_change(tmp_path: Path) -> None:
    src = tmp_path / "binance-futures_derivative_ticker_2024-08-08_BTCUSDT.csv.gz"
    src.write_bytes(gzip.compress("\n".join([TICKER_HEADER, *TICKER_ROWS, ""]).encode()))
    out = tmp_path / "cat"
    result = CliRunner().invoke(data_group, ["import-tardis", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 funding updates" in result.output
    got = MarketCatalog(out).load_funding("BTCUSDT-PERP", DAY8)
    changed = [TICKER_ROWS[1].split(","), TICKER_ROWS[3].split(",")]
    assert len(got) == 2
    for u, row in zip(got, changed, strict=True):
        assert (u.ts_event, u.ts_init) == (int(row[2]) * 1000, int(row[3]) * 1000)
        assert u.next_funding_ns == int(row[4]) * 1000
        assert str(u.rate) == row[5]
        assert u.instrument_id == InstrumentId.from_str(PERP)


def test_tardis_bad_funding_rate_names_line_and_column(tmp_path: Path) -> None:
    rows = [*TICKER_ROWS[:2], TICKER_ROWS[2].replace("0.00010000", "1e999")]
    src = tmp_path / "binance-futures_derivative_ticker_2024-08-08_BTCUSDT.csv"
    src.write_text("\n".join([TICKER_HEADER, *rows, ""]))
    from training.data.sources.tardis import import_tardis

    with pytest.raises(DataFileError) as err:
        import_tardis([src], tmp_path / "cat", progress=False)
    assert err.value.line == 4 and err.value.field == "funding_rate"
    assert f"{src}:4: column 'funding_rate'" in str(err.value)
