"""Binance public-data files (data.binance.vision layouts) → catalog: ``nhmm data import-binance``.

Kinds: ``trades``, ``aggTrades`` → trades; ``bookTicker`` → quotes; USD-M ``T_DEPTH`` snap/update →
L2 deltas (sequenced with ``pu``); ``1m`` klines → Nautilus ``Bar``s; Nautilus's Parquet copy of spot
trades (``timestamp, trade_id, price, quantity, buyer_maker``). Files may be zipped, gzipped or plain,
with or without a header; timestamps in ms, µs or ns are told apart by magnitude. A bad row fails the
whole import with ``file:line`` and the column, before anything is written.

>>> detect_kind("BTCUSDT-aggTrades-2024-08-08.zip")
('aggTrades', 'BTCUSDT')
>>> detect_kind("btcusdt-depth-snap.csv")
('depth', 'BTCUSDT')
>>> to_ns(np.array([1723161599999, 1735689600000123])).tolist()
[1723161599999000000, 1735689600000123000]
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import re
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from tqdm import tqdm

from training.data.book import BinanceBookSync
from training.data.catalog import NS_PER_DAY, MarketCatalog, SymbolDay
from training.data.columns import (
    BUYER,
    SELLER,
    DeltaColumns,
    MarketEvents,
    QuoteColumns,
    TradeColumns,
)
from training.data.report import ImportReport

Market = Literal["spot", "usdm"]
KINDS = ("trades", "aggTrades", "bookTicker", "depth", "klines")


class DataFileError(ValueError):
    """A bad input file or row; the message names ``file:line`` and the column."""


# --------------------------------------------------------------------------------------------
# Reading CSV sources (plain / .gz / .zip, header or not) with exact error locations


@dataclass(frozen=True)
class Layout:
    """One CSV column layout: names and Arrow types in file order."""

    names: tuple[str, ...]
    types: tuple[pa.DataType, ...]

    @classmethod
    def of(cls, spec: str) -> Layout:
        """``"id:i,price:f,side:s,maker:b"`` → Layout (i=int64, f=float64, s=string, b=bool)."""
        codes = {"i": pa.int64(), "f": pa.float64(), "s": pa.string(), "b": pa.bool_()}
        pairs = [item.split(":") for item in spec.split(",")]
        return cls(tuple(n for n, _ in pairs), tuple(codes[t] for _, t in pairs))


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[IO[bytes]]:
    """Open a plain, gzip (``.gz``) or single-member zip (``.zip``) file as a binary stream."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if not n.endswith("/")]
            if len(members) != 1:
                raise DataFileError(f"{path}: expected one file in the zip, found {members}")
            with zf.open(members[0]) as f:
                yield f
    elif path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            yield f
    else:
        with open(path, "rb") as f:
            yield f


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-empty line."""
    with open_source(path) as f:
        for lineno, raw in enumerate(io.TextIOWrapper(f, encoding="utf-8", newline=""), 1):
            text = raw.rstrip("\r\n")
            if text:
                yield lineno, text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sniff(path: Path) -> tuple[bool, int]:
    """(has header, number of columns) from the first non-empty line."""
    for _, text in _data_lines(path):
        fields = text.split(",")
        return not _is_number(fields[0].strip().strip('"')), len(fields)
    raise DataFileError(f"{path}: empty file")


def _convert(value: str, typ: pa.DataType) -> object:
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_floating(typ):
        out = float(value)
        if not np.isfinite(out):
            raise ValueError("not finite")
        return out
    if pa.types.is_boolean(typ):
        low = value.strip().lower()
        if low not in ("true", "false", "1", "0"):
            raise ValueError("not a boolean")
        return low in ("true", "1")
    if value == "":
        raise ValueError("empty")
    return value


def _locate_bad_field(path: Path, layout: Layout, header: bool) -> DataFileError | None:
    """Scan rows in Python to name the first unparsable line and column (error path only)."""
    lines = _data_lines(path)
    if header:
        next(lines, None)
    for lineno, text in lines:
        fields = text.split(",")
        if len(fields) != len(layout.names):
            return DataFileError(
                f"{path}:{lineno}: expected {len(layout.names)} columns, got {len(fields)}"
            )
        for name, typ, value in zip(layout.names, layout.types, fields, strict=True):
            try:
                _convert(value.strip('"'), typ)
            except ValueError:
                return DataFileError(f"{path}:{lineno}: column {name!r}: bad value {value!r}")
    return None


def line_of_row(path: Path, header: bool, row: int) -> int:
    """File line number of data row ``row`` (0-based, empty lines skipped)."""
    lines = _data_lines(path)
    if header:
        next(lines, None)
    for i, (lineno, _) in enumerate(lines):
        if i == row:
            return lineno
    raise IndexError(row)


@dataclass(frozen=True)
class CsvTable:
    """A parsed CSV: the Arrow table and where its rows came from (for error messages)."""

    path: Path
    header: bool
    table: pa.Table

    def column(self, name: str) -> np.ndarray:
        return self.table.column(name).to_numpy()

    def fail(self, row: int, column: str, what: str) -> DataFileError:
        value = self.table.column(column)[row].as_py()
        line = line_of_row(self.path, self.header, row)
        return DataFileError(f"{self.path}:{line}: column {column!r}: {what} (got {value!r})")

    def codes(self, column: str, allowed: Sequence[str]) -> np.ndarray:
        """Index of each value in ``allowed`` (case-insensitive); others fail with ``file:line``."""
        lowered = pc.utf8_lower(self.table.column(column))
        value_set = pa.array([a.lower() for a in allowed])
        idx = pc.index_in(lowered, value_set=value_set).fill_null(-1).to_numpy()
        self.require(idx < 0, column, f"expected one of {list(allowed)}")
        return idx

    def ns(self, column: str) -> np.ndarray:
        """A timestamp column (ms/µs/ns by magnitude) as ns; non-positive or beyond year 2200
        values fail with ``file:line``."""
        ts = self.column(column)
        self.require(ts <= 0, column, "timestamp must be > 0")
        self.require((ts >= 7_258_118_400_000) & (ts < 10**14), column, "timestamp out of range")
        return to_ns(ts)

    def require(self, bad: np.ndarray, column: str, what: str) -> None:
        """Raise naming the first row where ``bad`` is true."""
        if bad.any():
            raise self.fail(int(np.argmax(bad)), column, what)


def read_csv(path: Path, layouts: Sequence[Layout]) -> CsvTable:
    """Read ``path`` with the layout whose column count matches; every value must parse.

    Parsing is pyarrow's (fast); when it fails, a Python scan names the exact ``file:line`` and
    column. Empty fields and NaN/inf are errors too.
    """
    header, ncols = sniff(path)
    by_count = {len(layout.names): layout for layout in layouts}
    layout = by_count.get(ncols)
    if layout is None:
        raise DataFileError(
            f"{path}:1: {ncols} columns; this kind has {sorted(by_count)} (wrong --kind?)"
        )
    read_options = pacsv.ReadOptions(column_names=list(layout.names), skip_rows=int(header))
    convert = pacsv.ConvertOptions(
        column_types=dict(zip(layout.names, layout.types, strict=True)),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        with open_source(path) as f:
            table = pacsv.read_csv(f, read_options=read_options, convert_options=convert)
    except pa.ArrowInvalid as exc:
        located = _locate_bad_field(path, layout, header)
        raise (located or DataFileError(f"{path}: {exc}")) from exc
    out = CsvTable(path, header, table)
    for name in layout.names:
        col = table.column(name)
        if col.null_count:
            row = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
            line = line_of_row(path, header, row)
            raise DataFileError(f"{path}:{line}: column {name!r}: empty or NaN value")
        if pa.types.is_floating(col.type):
            out.require(~np.isfinite(col.to_numpy()), name, "not a finite number")
    return out


def to_ns(ts: np.ndarray) -> np.ndarray:
    """Epoch timestamps in ms, µs or ns (told apart by magnitude, per value) → ns int64."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return ts.copy()
    scale_of = np.array([1_000_000, 1_000, 1], dtype=np.int64)
    lo, hi = np.searchsorted([10**14, 10**17], [ts.min(), ts.max()], side="right")
    if lo == hi:  # one unit for the whole file: the usual case
        return ts * scale_of[lo]
    return ts * scale_of[np.searchsorted([10**14, 10**17], ts, side="right")]


# --------------------------------------------------------------------------------------------
# File kinds

_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)[-_](?P<rest>.*)$")


def detect_kind(name: str) -> tuple[str, str | None]:
    """(kind, symbol) from a data.binance.vision-style file name; raises if unknown.

    >>> detect_kind("ADABTC-1m-2021-11-27.csv")
    ('klines', 'ADABTC')
    >>> detect_kind("BTCUSDT_T_DEPTH_2022-11-01_depth_update.csv")
    ('depth', 'BTCUSDT')
    """
    m = _NAME.match(Path(name).name)
    if m is None:
        raise DataFileError(f"{name}: cannot tell the kind from the name; pass --kind")
    rest = m["rest"].lower()
    symbol = m["symbol"].upper()
    if "depth" in rest:
        kind = "depth"
    elif rest.startswith("aggtrades"):
        kind = "aggTrades"
    elif rest.startswith("trades"):
        kind = "trades"
    elif rest.startswith("bookticker"):
        kind = "bookTicker"
    elif re.match(r"^1m[-_.]", rest):
        kind = "klines"
    else:
        raise DataFileError(f"{name}: cannot tell the kind from the name; pass --kind")
    return kind, symbol


def detect_market(path: Path, kind: str) -> Market:
    """Market from the data.binance.vision path, else from the kind (depth/bookTicker are USD-M)."""
    posix = path.as_posix()
    if "/futures/um/" in posix:
        return "usdm"
    if "/spot/" in posix:
        return "spot"
    return "usdm" if kind in ("depth", "bookTicker") else "spot"


# --------------------------------------------------------------------------------------------
# Parsers → columns

TRADE_LAYOUTS = (
    Layout.of("id:i,price:f,qty:f,quote_qty:f,time:i,is_buyer_maker:b,is_best_match:b"),  # spot
    Layout.of("id:i,price:f,qty:f,quote_qty:f,time:i,is_buyer_maker:b"),  # USD-M
)
AGG_TRADE_LAYOUTS = (
    Layout.of(
        "id:i,price:f,qty:f,first_trade_id:i,last_trade_id:i,time:i,is_buyer_maker:b,is_best_match:b"
    ),
    Layout.of("id:i,price:f,qty:f,first_trade_id:i,last_trade_id:i,time:i,is_buyer_maker:b"),
)
BOOK_TICKER_LAYOUTS = (
    Layout.of(
        "update_id:i,best_bid_price:f,best_bid_qty:f,best_ask_price:f,best_ask_qty:f,"
        "transaction_time:i,event_time:i"
    ),
)
DEPTH_LAYOUTS = (
    Layout.of(
        "symbol:s,timestamp:i,first_update_id:i,last_update_id:i,side:s,update_type:s,"
        "price:f,qty:f,pu:i"
    ),
)
KLINE_LAYOUTS = (
    Layout.of(
        "open_time:i,open:f,high:f,low:f,close:f,volume:f,close_time:i,quote_volume:f,"
        "count:i,taker_buy_volume:f,taker_buy_quote_volume:f,ignore:f"
    ),
)


def _sorted_by(ts: np.ndarray) -> np.ndarray | slice:
    return slice(None) if (np.diff(ts) >= 0).all() else np.argsort(ts, kind="stable")


def _trades_from(
    src: CsvTable | None,
    ts_raw: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    buyer_maker: np.ndarray,
    trade_id: np.ndarray,
) -> TradeColumns:
    if src is not None:
        src.require(price <= 0, "price", "price must be > 0")
        src.require(qty <= 0, "qty", "quantity must be > 0")
    ts = src.ns("time") if src is not None else to_ns(ts_raw)
    aggressor = np.where(buyer_maker, SELLER, BUYER).astype(np.uint8)
    order = _sorted_by(ts)
    return TradeColumns(
        ts_event=ts[order],
        ts_init=ts[order].copy(),
        price=price.astype(np.float64)[order],
        size=qty.astype(np.float64)[order],
        aggressor=aggressor[order],
        trade_id=trade_id.astype(np.int64)[order],
    )


def parse_trades(path: Path, kind: str = "trades") -> TradeColumns:
    """``trades`` / ``aggTrades`` CSV → trades; a maker buyer means the SELLER was the aggressor."""
    src = read_csv(path, TRADE_LAYOUTS if kind == "trades" else AGG_TRADE_LAYOUTS)
    return _trades_from(
        src,
        src.column("time"),
        src.column("price"),
        src.column("qty"),
        src.column("is_buyer_maker"),
        src.column("id"),
    )


def parse_trades_parquet(path: Path) -> TradeColumns:
    """Nautilus's Parquet copy of spot trades (``timestamp[ms], trade_id, price, quantity,
    buyer_maker``); the error for a bad value names ``file:row N`` and the column."""
    table = pq.read_table(path)
    need = ("timestamp", "trade_id", "price", "quantity", "buyer_maker")
    missing = [c for c in need if c not in table.column_names]
    if missing:
        raise DataFileError(f"{path}: missing columns {missing}; has {table.column_names}")

    def bad(column: str, row: int, what: str) -> DataFileError:
        value = table.column(column)[row].as_py()
        return DataFileError(f"{path}:row {row + 1}: column {column!r}: {what} (got {value!r})")

    for name in need:
        col = table.column(name)
        if col.null_count:
            raise bad(name, int(np.argmax(col.is_null().to_numpy(zero_copy_only=False))), "null")
    ts_col = table.column("timestamp")
    if pa.types.is_timestamp(ts_col.type):
        ts = ts_col.cast(pa.timestamp("ns", tz=ts_col.type.tz)).cast(pa.int64()).to_numpy()
    else:
        ts = to_ns(ts_col.to_numpy())
    maker_col = table.column("buyer_maker")
    if pa.types.is_boolean(maker_col.type):
        maker = maker_col.to_numpy(zero_copy_only=False).astype(bool)
    else:
        text = np.char.lower(maker_col.cast(pa.string()).to_numpy(zero_copy_only=False).astype(str))
        ok = np.isin(text, ["true", "false"])
        if not ok.all():
            raise bad("buyer_maker", int(np.argmin(ok)), "expected true/false")
        maker = text == "true"
    price = table.column("price").to_numpy().astype(np.float64)
    qty = table.column("quantity").to_numpy().astype(np.float64)
    for name, values in (("price", price), ("quantity", qty)):
        wrong = ~np.isfinite(values) | (values <= 0)
        if wrong.any():
            raise bad(name, int(np.argmax(wrong)), "must be a finite number > 0")
    return _trades_from(None, ts, price, qty, maker, table.column("trade_id").to_numpy())


def parse_book_ticker(path: Path) -> QuoteColumns:
    """``bookTicker`` CSV → quotes; ``ts_event`` = transaction time, ``ts_init`` = event time
    (when Binance published it; the nearest thing to a receive stamp the file has)."""
    src = read_csv(path, BOOK_TICKER_LAYOUTS)
    for name in ("best_bid_price", "best_ask_price"):
        src.require(src.column(name) <= 0, name, "price must be > 0")
    for name in ("best_bid_qty", "best_ask_qty"):
        src.require(src.column(name) < 0, name, "quantity must be >= 0")
    ts = src.ns("transaction_time")
    ts_init = np.maximum(src.ns("event_time"), ts)
    order = _sorted_by(ts)
    return QuoteColumns(
        ts_event=ts[order],
        ts_init=ts_init[order],
        bid_price=src.column("best_bid_price")[order],
        bid_size=src.column("best_bid_qty")[order],
        ask_price=src.column("best_ask_price")[order],
        ask_size=src.column("best_ask_qty")[order],
    )


@dataclass(frozen=True)
class Klines:
    """1-minute klines as columns (ns timestamps)."""

    open_time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)


def parse_klines(path: Path) -> Klines:
    """Binance kline CSV (12 columns, header or not) → columns, checked for sane OHLC."""
    src = read_csv(path, KLINE_LAYOUTS)
    o, h, lo, c = (src.column(n) for n in ("open", "high", "low", "close"))
    for name, values in (("open", o), ("high", h), ("low", lo), ("close", c)):
        src.require(values <= 0, name, "price must be > 0")
    src.require(h < np.maximum.reduce([o, c, lo]), "high", "high below open/close/low")
    src.require(lo > np.minimum(o, c), "low", "low above open/close")
    src.require(src.column("volume") < 0, "volume", "volume must be >= 0")
    open_ns = src.ns("open_time")
    close_ns = src.ns("close_time")
    src.require(close_ns <= open_ns, "close_time", "close_time must be after open_time")
    order = _sorted_by(open_ns)
    return Klines(
        open_ns[order], close_ns[order], o[order], h[order], lo[order], c[order],
        src.column("volume")[order],
    )  # fmt: skip


@dataclass(frozen=True)
class DepthRows:
    """T_DEPTH rows (ns timestamps), in file order; sides ``b``/``a``, types ``snap``/``set``."""

    path: Path
    src: CsvTable
    ts: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    pu: np.ndarray
    is_bid: np.ndarray
    is_snap: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    symbol: str


def parse_depth(path: Path) -> DepthRows:
    """USD-M ``T_DEPTH`` snap/update CSV → checked rows (one symbol per file)."""
    src = read_csv(path, DEPTH_LAYOUTS)
    is_bid = src.codes("side", ["a", "b"]) == 1
    is_snap = src.codes("update_type", ["set", "snap"]) == 1
    src.require(src.column("price") <= 0, "price", "price must be > 0")
    src.require(src.column("qty") < 0, "qty", "quantity must be >= 0")
    symbols = pc.unique(src.table.column("symbol")).to_pylist()
    if len(symbols) != 1:
        raise DataFileError(f"{path}: expected one symbol, found {symbols}")
    return DepthRows(
        path=path,
        src=src,
        ts=src.ns("timestamp"),
        first_id=src.column("first_update_id"),
        last_id=src.column("last_update_id"),
        pu=src.column("pu"),
        is_bid=is_bid,
        is_snap=is_snap,
        price=src.column("price"),
        qty=src.column("qty"),
        symbol=str(symbols[0]).upper(),
    )


def empty_events() -> MarketEvents:
    """No deltas, trades or quotes."""
    return MarketEvents(DeltaColumns.empty(), TradeColumns.empty(), QuoteColumns.empty())


# --------------------------------------------------------------------------------------------
# T_DEPTH → sequenced L2 deltas


@dataclass(frozen=True)
class DepthResult:
    """Deltas from T_DEPTH files plus what sequencing saw."""

    deltas: DeltaColumns
    messages: int
    applied: int
    gaps: int
    resyncs: int
    dropped: int


def depth_deltas(parts: Sequence[DepthRows], market: Market = "usdm") -> DepthResult:
    """Snap + update rows (any number of files, one symbol) → sequenced L2 deltas.

    A message is a run of rows sharing ``last_update_id`` and type. Messages are ordered by
    (timestamp, last_update_id, snap first) and fed to :class:`training.data.book.BinanceBookSync`
    (the WS importer's sequencer): a snap becomes CLEAR + ADDs (``F_SNAPSHOT``); USD-M updates need
    ``U <= L <= u`` first, then ``pu == previous u``. A gap is counted, a lone CLEAR (``F_LAST``)
    marks the book untrusted, and updates wait for the next snap (a resync). Updates still waiting
    for a snapshot at the end count as dropped. Every message's last delta carries ``F_LAST``.
    """
    if not parts:
        return DepthResult(DeltaColumns.empty(), 0, 0, 0, 0, 0)
    cat = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in ("ts", "first_id", "last_id", "pu", "is_bid", "is_snap", "price", "qty")
    }
    # message id per row: a new message where (file, last_id, is_snap) changes
    file_no = np.concatenate([np.full(len(p.ts), i) for i, p in enumerate(parts)])
    n = len(file_no)
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = (
        (file_no[1:] != file_no[:-1])
        | (cat["last_id"][1:] != cat["last_id"][:-1])
        | (cat["is_snap"][1:] != cat["is_snap"][:-1])
    )
    starts = np.flatnonzero(boundary)
    m_ts, m_u = cat["ts"][starts], cat["last_id"][starts]
    m_first, m_pu, m_snap = cat["first_id"][starts], cat["pu"][starts], cat["is_snap"][starts]
    order = np.lexsort((~m_snap, m_u, m_ts))

    price, qty = cat["price"].tolist(), cat["qty"].tolist()
    is_bid = cat["is_bid"].tolist()
    ends = np.append(starts[1:], n).tolist()
    sync = BinanceBookSync(market)
    for mid in order.tolist():
        lo, hi = int(starts[mid]), ends[mid]
        bids = [(price[i], qty[i]) for i in range(lo, hi) if is_bid[i]]
        asks = [(price[i], qty[i]) for i in range(lo, hi) if not is_bid[i]]
        ts = int(m_ts[mid])
        if m_snap[mid]:
            sync.on_snapshot(int(m_u[mid]), bids, asks, ts_event=ts, ts_init=ts)
        else:
            U, u, pu = int(m_first[mid]), int(m_u[mid]), int(m_pu[mid])
            sync.on_depth(U, u, pu, bids, asks, ts_event=ts, ts_init=ts)
    return DepthResult(
        sync.deltas(),
        messages=len(starts),
        applied=sync.applied,
        gaps=sync.gaps,
        resyncs=sync.resyncs,
        dropped=len(starts) - sync.snapshots - sync.applied,
    )


# --------------------------------------------------------------------------------------------
# Instrument precision that fits the data


def needed_decimals(values: np.ndarray, start: int, limit: int = 12) -> int:
    """Fewest decimals (>= ``start``) that represent every value exactly (same tolerance as the
    catalog's fixed-point encoder).

    >>> needed_decimals(np.array([0.000263, 0.5]), 5)
    6
    """
    v = np.unique(np.asarray(values, dtype=np.float64))
    for d in range(start, limit + 1):
        scaled = v * 10.0**d
        if (np.abs(scaled - np.round(scaled)) <= 1e-3 + 1e-12 * np.abs(scaled)).all():
            return d
    return limit


def fit_precision(
    instrument: Instrument, prices: Sequence[np.ndarray], sizes: Sequence[np.ndarray]
) -> tuple[Instrument, dict[str, list[int]]]:
    """The instrument, with price/size precision widened if the data is finer than today's
    exchangeInfo (old data: BTCUSDT's LOT_SIZE step was 1e-6 in 2021, 1e-5 now).

    Returns (instrument, {"size_precision": [old, new], ...}) — empty when nothing changed.
    """
    pp, sp = int(instrument.price_precision), int(instrument.size_precision)
    new_pp = max([pp, *(needed_decimals(a, pp) for a in prices if len(a))])
    new_sp = max([sp, *(needed_decimals(a, sp) for a in sizes if len(a))])
    if (new_pp, new_sp) == (pp, sp):
        return instrument, {}
    d = type(instrument).to_dict(instrument)

    def requant(key: str, prec: int) -> None:
        if d.get(key) is not None:
            d[key] = f"{Decimal(str(d[key])):.{prec}f}"

    d["price_precision"], d["size_precision"] = new_pp, new_sp
    d["price_increment"] = f"{Decimal(1).scaleb(-new_pp):.{new_pp}f}"
    d["size_increment"] = f"{Decimal(1).scaleb(-new_sp):.{new_sp}f}"
    for key in ("max_price", "min_price"):
        requant(key, new_pp)
    for key in ("max_quantity", "min_quantity"):
        requant(key, new_sp)
    note = {}
    if new_pp != pp:
        note["price_precision"] = [pp, new_pp]
    if new_sp != sp:
        note["size_precision"] = [sp, new_sp]
    return type(instrument).from_dict(d), note


def fit_events(instrument: Instrument, events: MarketEvents) -> tuple[Instrument, dict]:
    """:func:`fit_precision` over every price and size in ``events``."""
    d, t, q = events.deltas, events.trades, events.quotes
    return fit_precision(
        instrument,
        [d.price, t.price, q.bid_price, q.ask_price],
        [d.size, t.size, q.bid_size, q.ask_size],
    )


# --------------------------------------------------------------------------------------------
# Klines → Nautilus bars


def bar_type_for(instrument: Instrument) -> BarType:
    """``<INSTRUMENT>-1-MINUTE-LAST-EXTERNAL``."""
    return BarType.from_str(f"{instrument.id.value}-1-MINUTE-LAST-EXTERNAL")


def klines_to_bars(instrument: Instrument, klines: Klines) -> list[Bar]:
    """1m klines → Nautilus ``Bar``s at the instrument's precisions; ``ts_event`` = kline close
    time, as Nautilus's own Binance adapter does."""
    bar_type = bar_type_for(instrument)
    pp, sp = int(instrument.price_precision), int(instrument.size_precision)
    bars = []
    for i in range(len(klines)):
        ts = int(klines.close_time[i])
        bars.append(
            Bar(
                bar_type,
                Price(float(klines.open[i]), pp),
                Price(float(klines.high[i]), pp),
                Price(float(klines.low[i]), pp),
                Price(float(klines.close[i]), pp),
                Quantity(float(klines.volume[i]), sp),
                ts,
                ts,
            )
        )
    return bars


def write_bars(catalog: MarketCatalog, instrument: Instrument, bars: list[Bar]) -> list[SymbolDay]:
    """Write bars with ``MarketCatalog.nautilus.write_data``, one file per UTC day of
    ``ts_event`` (named by that day's bounds, so re-importing a day replaces it); all or nothing:
    files are written to a staging catalog first, then moved into place."""
    if not bars:
        return []
    catalog.write(instrument, empty_events())  # the instrument itself
    by_day: dict[int, list[Bar]] = {}
    for bar in bars:
        by_day.setdefault(bar.ts_event // NS_PER_DAY, []).append(bar)
    staging = catalog.root / ".staging" / uuid.uuid4().hex
    moved: list[tuple[Path, Path | None]] = []
    try:
        stage = ParquetDataCatalog(str(staging))
        for day, day_bars in sorted(by_day.items()):
            start = day * NS_PER_DAY
            stage.write_data(day_bars, start=start, end=start + NS_PER_DAY - 1)
        for src in sorted(staging.rglob("*.parquet")):
            target = catalog.root / src.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            backup = None
            if target.exists():
                backup = staging / ".backup" / f"{len(moved)}.parquet"
                backup.parent.mkdir(parents=True, exist_ok=True)
                target.replace(backup)
            src.replace(target)
            moved.append((target, backup))
    except BaseException:
        for target, backup in reversed(moved):
            target.unlink(missing_ok=True)
            if backup is not None:
                backup.replace(target)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    epoch = datetime.date(1970, 1, 1)
    return [SymbolDay(instrument.id.value, epoch + datetime.timedelta(days=int(d))) for d in by_day]


# --------------------------------------------------------------------------------------------
# The import


@dataclass
class _Group:
    """Everything parsed for one (market, symbol)."""

    market: Market
    symbol: str
    trades: list[TradeColumns]
    quotes: list[QuoteColumns]
    depth: list[DepthRows]
    klines: list[Klines]


def _classify(
    path: Path, kind: str | None, market: str, symbol: str | None
) -> tuple[str, Market, str]:
    if path.suffix == ".parquet":
        file_kind, file_symbol = detect_kind(path.name) if kind is None else (kind, None)
        if file_kind != "trades":
            raise DataFileError(f"{path}: only trades are supported as Parquet")
        file_kind = "parquet-trades"
    elif kind is not None:
        file_kind = kind
        try:
            file_symbol = detect_kind(path.name)[1]
        except DataFileError:
            file_symbol = None
    else:
        file_kind, file_symbol = detect_kind(path.name)
    sym = (symbol or file_symbol or "").upper()
    if not sym:
        raise DataFileError(f"{path}: cannot tell the symbol from the name; pass --symbol")
    mkt: Market = (
        detect_market(path, file_kind.removeprefix("parquet-")) if market == "auto" else market  # type: ignore[assignment]
    )
    return file_kind, mkt, sym


def import_binance(
    paths: Sequence[Path],
    out: Path,
    *,
    kind: str | None = None,
    market: str = "auto",
    symbol: str | None = None,
    exchange_info: Path | None = None,
    name: str | None = None,
    progress: bool = True,
) -> tuple[ImportReport, Path]:
    """Parse every file first (any bad row aborts before writing), then write one partition per
    symbol-day and the report; returns (report, report path)."""
    from training.data.instruments import binance_instrument

    t0 = time.perf_counter()
    paths = [Path(p) for p in paths]
    groups: dict[tuple[Market, str], _Group] = {}
    for path in tqdm(paths, desc="parse", unit="file", disable=not progress):
        if not path.is_file():
            raise DataFileError(f"{path}: no such file")
        file_kind, mkt, sym = _classify(path, kind, market, symbol)
        g = groups.setdefault((mkt, sym), _Group(mkt, sym, [], [], [], []))
        if file_kind == "parquet-trades":
            g.trades.append(parse_trades_parquet(path))
        elif file_kind in ("trades", "aggTrades"):
            g.trades.append(parse_trades(path, file_kind))
        elif file_kind == "bookTicker":
            g.quotes.append(parse_book_ticker(path))
        elif file_kind == "depth":
            rows = parse_depth(path)
            if rows.symbol != sym:
                raise DataFileError(f"{path}: rows are {rows.symbol}, expected {sym}")
            g.depth.append(rows)
        elif file_kind == "klines":
            g.klines.append(parse_klines(path))
        else:
            raise DataFileError(f"{path}: unknown kind {file_kind!r}; one of {KINDS}")

    report = ImportReport(name=name or f"import-binance-{paths[0].name.split('.')[0]}")
    report.sources = [str(p) for p in paths]
    plans = []
    for g in groups.values():
        instrument = binance_instrument(g.symbol, g.market, exchange_info)
        depth = depth_deltas(g.depth, g.market)
        trades = TradeColumns.concat(g.trades)
        quotes = QuoteColumns.concat(g.quotes)
        if len(g.trades) > 1:
            trades = trades.take(np.argsort(trades.ts_event, kind="stable"))
        if len(g.quotes) > 1:
            quotes = quotes.take(np.argsort(quotes.ts_event, kind="stable"))
        events = MarketEvents(depth.deltas, trades, quotes)
        klines = g.klines
        instrument, note = fit_precision(
            instrument,
            [depth.deltas.price, trades.price, quotes.bid_price, quotes.ask_price]
            + [getattr(k, f) for k in klines for f in ("open", "high", "low", "close")],
            [depth.deltas.size, trades.size, quotes.bid_size, quotes.ask_size]
            + [k.volume for k in klines],
        )
        if note:
            report.extra.setdefault("precision_widened", {})[instrument.id.value] = note
        bars = [b for k in g.klines for b in klines_to_bars(instrument, k)]
        bars.sort(key=lambda b: b.ts_init)
        plans.append((instrument, events, depth, bars))

    catalog = MarketCatalog(out)  # only now: a bad file or symbol leaves no catalog behind
    bars_total = 0
    days: set[SymbolDay] = set()
    for instrument, events, depth, bars in plans:
        if len(events):
            days.update(catalog.write(instrument, events))
        if bars:
            days.update(write_bars(catalog, instrument, bars))
        report.instrument_ids.append(instrument.id.value)
        report.deltas += len(events.deltas)
        report.trades += len(events.trades)
        report.quotes += len(events.quotes)
        report.gaps += depth.gaps
        report.resyncs += depth.resyncs
        bars_total += len(bars)
        for cols in (events.deltas, events.trades, events.quotes):
            if len(cols):
                report.add_ts(int(cols.ts_event.min()))
                report.add_ts(int(cols.ts_event.max()))
        if bars:
            report.add_ts(bars[0].ts_event)
            report.add_ts(bars[-1].ts_event)
        report.extra.setdefault("depth_messages", 0)
        report.extra["depth_messages"] += depth.messages
        report.extra.setdefault("depth_dropped", 0)
        report.extra["depth_dropped"] += depth.dropped
    report.extra["bars"] = bars_total
    report.events = report.deltas + report.trades + report.quotes + bars_total
    report.instrument_ids.sort()
    report.symbol_days = [str(sd) for sd in sorted(days)]
    report.finish(time.perf_counter() - t0)
    return report, catalog.write_report(report.name, report)


@click.command(name="import-binance")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Catalog root.")
@click.option(
    "--kind", type=click.Choice(KINDS), default=None, help="Override the name-based kind."
)
@click.option("--market", type=click.Choice(["auto", "spot", "usdm"]), default="auto")
@click.option("--symbol", default=None, help="Symbol when the file name does not tell it.")
@click.option("--exchange-info", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--name", default=None, help="Report name (CATALOG/reports/<name>.json).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def cli(
    files: tuple[Path, ...],
    out: Path,
    kind: str | None,
    market: str,
    symbol: str | None,
    exchange_info: Path | None,
    name: str | None,
    progress: bool,
) -> None:
    """Import Binance public-data files (trades, aggTrades, bookTicker, T_DEPTH, 1m klines)."""
    try:
        report, path = import_binance(
            files,
            out,
            kind=kind,
            market=market,
            symbol=symbol,
            exchange_info=exchange_info,
            name=name,
            progress=progress,
        )
    except (ValueError, KeyError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from exc
    click.echo(
        f"{report.events} events ({report.deltas} deltas, {report.trades} trades, "
        f"{report.quotes} quotes, {report.extra['bars']} bars), gaps {report.gaps}"
    )
    click.echo(str(path))
