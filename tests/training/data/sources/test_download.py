"""``nhmm data download`` against a loopback HTTP server laid out like data.binance.vision."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from training.cli.data import data as data_group
from training.data.sources.download import ChecksumError
from training.data.sources.download import DownloadError
from training.data.sources.download import DownloadNotFoundError
from training.data.sources.download import DownloadUnavailableError
from training.data.sources.download import download
from training.data.sources.download import fetch
from training.data.sources.download import remote_path
from training.errors import BadInputError
from training.errors import IntegrityError
from training.errors import NotFoundError
from training.errors import UnavailableError


@dataclass
class Site:
    """What the fake site serves and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    truncate_once: set[str] = field(default_factory=set)  # cut these off mid-body once
    ignore_range: bool = False

    def add(self, rel: str, body: bytes, checksum_of: bytes | None = None) -> None:
        digest = hashlib.sha256(body if checksum_of is None else checksum_of).hexdigest()
        self.files["/" + rel] = body
        self.files["/" + rel + ".CHECKSUM"] = f"{digest}  {rel.rsplit('/', 1)[1]}\n".encode()


def _handler(site: Site) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            site.requests.append((self.path, rng))
            body = site.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if rng and not site.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if self.path in site.truncate_once:
                site.truncate_once.discard(self.path)
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

    return Handler


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    s = Site()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(s))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield s, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def trade_zips(public_dir: Path) -> dict[datetime.date, bytes]:
    """Two daily spot trades zips made of real trades (data.binance.vision layout, no header)."""
    t = pq.read_table(public_dir / "btcusdt-trades.parquet")
    ms = t.column("timestamp").cast(pa.int64()).to_pylist()
    ids, price, qty = (t.column(c).to_pylist() for c in ("trade_id", "price", "quantity"))
    maker = t.column("buyer_maker").to_pylist()
    out = {}
    for k, day in enumerate((datetime.date(2021, 1, 8), datetime.date(2021, 1, 9))):
        shift = k * 86_400_000
        lines = [
            f"{ids[i]},{price[i]},{qty[i]},{price[i] * qty[i]},{ms[i] + shift},{maker[i]},True"
            for i in range(len(ids))
        ]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"BTCUSDT-trades-{day}.csv", "\n".join(lines) + "\n")
        out[day] = buf.getvalue()
    return out


DAYS = (datetime.date(2021, 1, 8), datetime.date(2021, 1, 9))


def publish(s: Site, zips: dict[datetime.date, bytes]) -> list[str]:
    rels = []
    for day in DAYS:
        rel = remote_path("spot", "trades", "BTCUSDT", day)
        s.add(rel, zips[day])
        rels.append(rel)
    return rels


def test_paths_match_data_binance_vision() -> None:
    day = datetime.date(2024, 8, 8)
    assert remote_path("spot", "trades", "btcusdt", day) == (
        "data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-08.zip"
    )
    assert remote_path("usdm", "aggTrades", "BTCUSDT", day) == (
        "data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-08-08.zip"
    )
    assert remote_path("spot", "klines", "ADABTC", day) == (
        "data/spot/daily/klines/ADABTC/1m/ADABTC-1m-2024-08-08.zip"
    )


def test_download_verify_then_skip(
    site: tuple[Site, str], trade_zips: dict, tmp_path: Path
) -> None:
    s, url = site
    rels = publish(s, trade_zips)
    got = download("spot", "trades", "BTCUSDT", *DAYS, tmp_path, base_url=url, progress=False)
    assert [d.status for d in got] == ["downloaded", "downloaded"]
    for d, rel, day in zip(got, rels, DAYS, strict=True):
        assert d.path == tmp_path / rel and d.path.read_bytes() == trade_zips[day]
        assert d.bytes_fetched == len(trade_zips[day])
        assert (tmp_path / (rel + ".CHECKSUM")).exists()
    n = len(s.requests)
    again = download("spot", "trades", "BTCUSDT", *DAYS, tmp_path, base_url=url, progress=False)
    assert [d.status for d in again] == ["skipped", "skipped"]
    assert all(p.endswith(".CHECKSUM") for p, _ in s.requests[n:])  # no zip fetched again


def test_resume_partial_file_with_range(
    site: tuple[Site, str], trade_zips: dict, tmp_path: Path
) -> None:
    s, url = site
    rel = publish(s, trade_zips)[0]
    body = trade_zips[DAYS[0]]
    dest = tmp_path / rel
    dest.parent.mkdir(parents=True)
    cut = len(body) // 3
    (dest.parent / (dest.name + ".part")).write_bytes(body[:cut])
    with httpx.Client(base_url=url) as client:
        got = fetch(client, "/" + rel, dest, progress=False)
    assert got.status == "resumed" and got.bytes_fetched == len(body) - cut
    assert dest.read_bytes() == body and not (dest.parent / (dest.name + ".part")).exists()
    assert ("/" + rel, f"bytes={cut}-") in s.requests


def test_dropped_connection_resumes_automatically(
    site: tuple[Site, str], trade_zips: dict, tmp_path: Path
) -> None:
    s, url = site
    rel = publish(s, trade_zips)[0]
    s.truncate_once.add("/" + rel)
    body = trade_zips[DAYS[0]]
    with httpx.Client(base_url=url) as client:
        got = fetch(client, "/" + rel, tmp_path / rel, progress=False)
    assert got.status == "resumed" and (tmp_path / rel).read_bytes() == body
    zip_requests = [r for p, r in s.requests if p == "/" + rel]
    assert zip_requests == [None, f"bytes={len(body) // 2}-"]


def test_checksum_mismatch_deletes_and_fails(
    site: tuple[Site, str], trade_zips: dict, tmp_path: Path
) -> None:
    s, url = site
    rel = remote_path("spot", "trades", "BTCUSDT", DAYS[0])
    s.add(rel, trade_zips[DAYS[0]], checksum_of=b"something else")
    with pytest.raises(DownloadError, match="SHA-256"):
        download("spot", "trades", "BTCUSDT", DAYS[0], DAYS[0], tmp_path, base_url=url,
                 progress=False)  # fmt: skip
    assert not (tmp_path / rel).exists() and not (tmp_path / (rel + ".part")).exists()


def test_server_without_range_restarts_cleanly(
    site: tuple[Site, str], trade_zips: dict, tmp_path: Path
) -> None:
    s, url = site
    s.ignore_range = True
    rel = publish(s, trade_zips)[0]
    dest = tmp_path / rel
    dest.parent.mkdir(parents=True)
    (dest.parent / (dest.name + ".part")).write_bytes(b"garbage-prefix")
    with httpx.Client(base_url=url) as client:
        fetch(client, "/" + rel, dest, progress=False)
    assert dest.read_bytes() == trade_zips[DAYS[0]]


def test_missing_day_is_an_error(site: tuple[Site, str], tmp_path: Path) -> None:
    _, url = site
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("usdm", "bookTicker", "BTCUSDT", DAYS[0], DAYS[0], tmp_path, base_url=url,
                 progress=False)  # fmt: skip


def cli_download(url: str, tmp: Path, market: str, kind: str, start: str, end: str) -> Any:
    """``nhmm data download ... --import-into tmp/cat`` of BTCUSDT; asserts it exits 0."""
    result = CliRunner().invoke(
        data_group,
        ["download", "--market", market, "--kind", kind, "--symbol", "BTCUSDT", "--start", start,
         "--end", end, "--dest", str(tmp / "dl"), "--base-url", url, "--import-into",
         str(tmp / "cat")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def test_cli_download_and_import(site: tuple[Site, str], trade_zips: dict, tmp_path: Path) -> None:
    s, url = site
    publish(s, trade_zips)
    cat = tmp_path / "cat"
    result = cli_download(url, tmp_path, "spot", "trades", "2021-01-08", "2021-01-09")
    path = cat / "reports" / "download-spot-BTCUSDT-trades-2021-01-08-2021-01-09.json"
    assert result.output.strip().splitlines()[-1] == str(path)
    report = json.loads(path.read_text())
    assert report["trades"] == 2 * 2001
    assert report["symbol_days"] == ["BTCUSDT.BINANCE/2021-01-08", "BTCUSDT.BINANCE/2021-01-09"]


def test_errors_say_their_kind(site: tuple[Site, str], trade_zips: dict, tmp_path: Path) -> None:
    s, url = site
    with pytest.raises(DownloadNotFoundError) as missing:
        download("usdm", "bookTicker", "BTCUSDT", DAYS[0], DAYS[0], tmp_path, base_url=url,
                 progress=False)  # fmt: skip
    assert isinstance(missing.value, NotFoundError)
    rel = remote_path("spot", "trades", "BTCUSDT", DAYS[0])
    s.add(rel, trade_zips[DAYS[0]], checksum_of=b"something else")
    with pytest.raises(ChecksumError) as bad:
        download("spot", "trades", "BTCUSDT", DAYS[0], DAYS[0], tmp_path, base_url=url,
                 progress=False)  # fmt: skip
    assert isinstance(bad.value, IntegrityError) and isinstance(bad.value, DownloadError)
    with pytest.raises(DownloadUnavailableError) as down:
        download("spot", "trades", "BTCUSDT", DAYS[0], DAYS[0], tmp_path,
                 base_url="http://127.0.0.1:9", progress=False)  # fmt: skip
    assert isinstance(down.value, UnavailableError)
    with pytest.raises(BadInputError, match="market"):
        remote_path("coinm", "trades", "BTCUSDT", DAYS[0])


def test_funding_rate_months_download_once_and_import(
    site: tuple[Site, str], tmp_path: Path
) -> None:
    """``fundingRate`` is published per month: a range over a month's end fetches each month's
    file once, and ``--import-into`` stores one funding update per settlement."""
    s, url = site
    rows = {"2024-07": "1722384000000,8,0.00010000\n1722412800000,8,0.00005000\n",
            "2024-08": "1722441600000,8,-0.00002150\n"}  # fmt: skip
    for month, body in rows.items():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(f"BTCUSDT-fundingRate-{month}.csv",
                        "calc_time,funding_interval_hours,last_funding_rate\n" + body)  # fmt: skip
        s.add(f"data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-{month}.zip",
              buf.getvalue())  # fmt: skip
    cat = tmp_path / "cat"
    cli_download(url, tmp_path, "usdm", "fundingRate", "2024-07-30", "2024-08-01")
    zips = [p for p, _ in s.requests if p.endswith(".zip")]
    assert zips == [f"/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-{m}.zip"
                    for m in rows]  # fmt: skip
    from training.data.catalog import MarketCatalog

    got = MarketCatalog(cat)
    rates = [str(u.rate) for d in (31, 1) for u in got.load_funding(
        "BTCUSDT-PERP", datetime.date(2024, 7 if d == 31 else 8, d))]  # fmt: skip
    assert rates == ["0.00010000", "0.00005000", "-0.00002150"]
    with pytest.raises(BadInputError, match="only USD-M"):
        remote_path("spot", "fundingRate", "BTCUSDT", DAYS[0])
