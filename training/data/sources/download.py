"""Zips from Binance's public-data site, SHA-256 verified and resumable: ``nhmm data download``.

Paths follow data.binance.vision (``data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-08.zip``,
USD-M under ``data/futures/um/daily/``, klines under ``.../klines/<SYMBOL>/1m/``; USD-M
``fundingRate`` is published per month only, ``data/futures/um/monthly/fundingRate/``), each with a
``.zip.CHECKSUM`` file (``<sha256>  <filename>``). A file that already verifies is skipped; a
``.part`` left by an interrupted transfer is resumed with an HTTP ``Range`` request; a checksum
mismatch deletes the file and fails. ``--import-into CATALOG`` then runs ``import-binance``
(:func:`import_downloaded`).

A failed transfer is a :class:`DownloadError`, by kind: :class:`DownloadNotFoundError` (HTTP
404: the day is not published), :class:`DownloadUnavailableError` (the host failed or did not
answer), :class:`ChecksumError` (the bytes do not match the published SHA-256).

>>> remote_path("usdm", "klines", "BTCUSDT", datetime.date(2024, 8, 8))
'data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-08-08.zip'
>>> remote_path("usdm", "fundingRate", "BTCUSDT", datetime.date(2024, 8, 8))
'data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-08.zip'
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from tqdm import tqdm

from training.data.report import ImportReport
from training.errors import BadInputError
from training.errors import IntegrityError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import UnavailableError
from training.io import atomic_write_text

__all__ = [
    "BASE_URL",
    "DOWNLOAD_KINDS",
    "ChecksumError",
    "DownloadError",
    "DownloadNotFoundError",
    "DownloadUnavailableError",
    "Downloaded",
    "days",
    "download",
    "fetch",
    "import_downloaded",
    "parse_checksum",
    "remote_path",
    "sha256_of",
]

BASE_URL = "https://data.binance.vision"
DOWNLOAD_KINDS = ("trades", "aggTrades", "bookTicker", "klines", "fundingRate")
Status = Literal["downloaded", "resumed", "skipped"]


class DownloadError(NhmmError):
    """A file could not be fetched or did not verify (the subclass says which)."""


class DownloadNotFoundError(DownloadError, NotFoundError):
    """The host has no such file (HTTP 404), e.g. a day not published yet."""


class DownloadUnavailableError(DownloadError, UnavailableError):
    """The host failed (an HTTP error, a bad range) or did not answer (network)."""


class ChecksumError(DownloadError, IntegrityError):
    """The bytes do not match the published SHA-256, or there is no valid checksum."""


def _http_error(url: str, status: int) -> DownloadError:
    cls = DownloadNotFoundError if status == 404 else DownloadUnavailableError
    return cls(f"{url}: HTTP {status}")


def remote_path(market: str, kind: str, symbol: str, day: datetime.date) -> str:
    """Path of the zip on data.binance.vision that holds ``day`` (1m interval for klines; the
    month's file for USD-M ``fundingRate``)."""
    if market not in ("spot", "usdm"):
        raise BadInputError(f"market must be 'spot' or 'usdm', got {market!r}", field="market")
    if kind not in DOWNLOAD_KINDS:
        raise BadInputError(f"kind must be one of {DOWNLOAD_KINDS}, got {kind!r}", field="kind")
    root = "data/spot/daily" if market == "spot" else "data/futures/um/daily"
    sym = symbol.upper()
    if kind == "fundingRate":
        if market != "usdm":
            raise BadInputError("fundingRate: only USD-M perpetuals fund", field="market")
        return f"data/futures/um/monthly/fundingRate/{sym}/{sym}-fundingRate-{day:%Y-%m}.zip"
    if kind == "klines":
        return f"{root}/klines/{sym}/1m/{sym}-1m-{day.isoformat()}.zip"
    return f"{root}/{kind}/{sym}/{sym}-{kind}-{day.isoformat()}.zip"


def days(start: datetime.date, end: datetime.date) -> Iterator[datetime.date]:
    """Every day from ``start`` to ``end`` inclusive."""
    if end < start:
        raise BadInputError(f"end {end} is before start {start}", field="end")
    for i in range((end - start).days + 1):
        yield start + datetime.timedelta(days=i)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_checksum(text: str, url: str) -> str:
    """The hex digest from a ``<sha256>  <filename>`` CHECKSUM body."""
    parts = text.split()
    digest = parts[0].lower() if parts else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ChecksumError(f"{url}: not a SHA-256 checksum file: {text[:80]!r}")
    return digest


@dataclass(frozen=True)
class Downloaded:
    """One verified local file and how it got there."""

    path: Path
    status: Status
    bytes_fetched: int


def fetch(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    retries: int = 3,
    progress: bool = True,
) -> Downloaded:
    """Download ``url`` to ``dest`` and verify it against ``url + ".CHECKSUM"``.

    Skips a ``dest`` that already verifies; resumes ``dest.part`` with ``Range``; retries
    transport errors (resuming each time). On mismatch the file is deleted and
    :class:`ChecksumError` raised.
    """
    try:
        checksum = client.get(url + ".CHECKSUM")
    except httpx.TransportError as exc:
        raise DownloadUnavailableError(f"{url}.CHECKSUM: {exc}") from exc
    if checksum.status_code != 200:
        raise _http_error(f"{url}.CHECKSUM", checksum.status_code)
    expected = parse_checksum(checksum.text, url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if sha256_of(dest) == expected:
            return Downloaded(dest, "skipped", 0)
        dest.unlink()  # stale or corrupt: fetch again
    part = dest.with_name(dest.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    fetched = 0
    for attempt in range(retries + 1):
        try:
            fetched += _stream_into(client, url, part, progress)
            break
        except httpx.TransportError as exc:
            if attempt == retries:
                raise DownloadUnavailableError(f"{url}: {exc} (partial kept in {part})") from exc
            resumed = True
    actual = sha256_of(part)
    if actual != expected:
        part.unlink()
        raise ChecksumError(f"{url}: SHA-256 {actual} != CHECKSUM {expected}; file deleted")
    part.replace(dest)
    atomic_write_text(dest.with_name(dest.name + ".CHECKSUM"), checksum.text, fsync=False)
    return Downloaded(dest, "resumed" if resumed else "downloaded", fetched)


def _stream_into(client: httpx.Client, url: str, part: Path, progress: bool) -> int:
    """Append the rest of ``url`` to ``part`` (Range from its size); returns bytes received."""
    offset = part.stat().st_size if part.exists() else 0
    # identity encoding: Range offsets then count the bytes we store
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with client.stream("GET", url, headers=headers) as r:
        if r.status_code == 416 and offset:  # nothing left to fetch: .part is complete
            return 0
        if r.status_code == 206:
            start = r.headers.get("content-range", "").removeprefix("bytes ").split("-")[0]
            if start != str(offset):
                raise DownloadUnavailableError(
                    f"{url}: asked for bytes {offset}-, got {start or '?'}"
                )
            mode = "ab"
        elif r.status_code == 200:
            offset, mode = 0, "wb"  # server ignored Range: start over
        else:
            raise _http_error(url, r.status_code)
        total = int(r.headers.get("content-length", 0)) + offset or None
        got = 0
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for chunk in r.iter_raw():  # as received, so a dropped link loses nothing
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        return got


def download(
    market: str,
    kind: str,
    symbol: str,
    start: datetime.date,
    end: datetime.date,
    dest: Path,
    *,
    base_url: str = BASE_URL,
    progress: bool = True,
    timeout_s: float = 60.0,
) -> list[Downloaded]:
    """Fetch every zip that holds a day from ``start`` to ``end`` (one per day; one per month
    for ``fundingRate``) into ``dest`` (same relative paths as on the site)."""
    rels = dict.fromkeys(remote_path(market, kind, symbol, day) for day in days(start, end))
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s) as client:
        return [fetch(client, "/" + rel, Path(dest) / rel, progress=progress) for rel in rels]


def import_downloaded(
    got: list[Downloaded],
    catalog: Path,
    market: str,
    kind: str,
    symbol: str,
    start: datetime.date,
    end: datetime.date,
) -> tuple[ImportReport, Path]:
    """Run ``import-binance`` on downloaded files; the report is
    ``download-<market>-<SYMBOL>-<kind>-<start>-<end>``."""
    from training.data.sources.binance_public import import_binance

    name = f"download-{market}-{symbol.upper()}-{kind}-{start}-{end}"
    return import_binance([d.path for d in got], catalog, market=market, symbol=symbol, name=name)
