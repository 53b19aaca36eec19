"""Binance public-data files → columns: kind and market from the file name, one parser per kind.

Kinds: ``trades``, ``aggTrades`` → trades; ``bookTicker`` → quotes; USD-M ``T_DEPTH`` snap/update
rows (sequenced by :mod:`._depth`); Nautilus's Parquet copy of spot trades (``timestamp,
trade_id, price, quantity, buyer_maker``). ``1m`` klines are :mod:`.bars`, USD-M ``fundingRate``
is :mod:`.funding`. Every bad value is a
:class:`~training.data.csv.DataFileError` naming ``file:line`` and the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.data.columns import BUYER
from training.data.columns import SELLER
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.csv import CsvTable
from training.data.csv import DataFileError
from training.data.csv import Layout
from training.data.csv import read_csv
from training.data.csv import to_ns
from training.data.instruments import Market

__all__ = [
    "KINDS",
    "DepthRows",
    "detect_kind",
    "detect_market",
    "parse_book_ticker",
    "parse_depth",
    "parse_trades",
    "parse_trades_parquet",
    "sorted_by",
]

KINDS = ("trades", "aggTrades", "bookTicker", "depth", "klines", "fundingRate")

_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+)[-_](?P<rest>.*)$")


def detect_kind(name: str) -> tuple[str, str | None]:
    """(kind, symbol) from a data.binance.vision-style file name; raises if unknown.

    >>> detect_kind("ADABTC-1m-2021-11-27.csv")
    ('klines', 'ADABTC')
    >>> detect_kind("BTCUSDT_T_DEPTH_2022-11-01_depth_update.csv")
    ('depth', 'BTCUSDT')
    >>> detect_kind("BTCUSDT-fundingRate-2024-08.zip")
    ('fundingRate', 'BTCUSDT')
    """
    m = _NAME.match(Path(name).name)
    rest = m["rest"].lower() if m else ""
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
    elif rest.startswith("fundingrate"):
        kind = "fundingRate"
    else:
        raise DataFileError(
            f"{name}: cannot tell the kind from the name; pass --kind", path=name, field="kind"
        )
    symbol = m["symbol"].upper()  # type: ignore[index]
    return kind, symbol


def detect_market(path: Path, kind: str) -> Market:
    """Market from the data.binance.vision path, else from the kind (depth, bookTicker and
    fundingRate are USD-M)."""
    posix = path.as_posix()
    if "/futures/um/" in posix:
        return "usdm"
    if "/spot/" in posix:
        return "spot"
    return "usdm" if kind in ("depth", "bookTicker", "fundingRate") else "spot"


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


def sorted_by(ts: np.ndarray) -> np.ndarray | slice:
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
    order = sorted_by(ts)
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
        raise DataFileError(
            f"{path}: missing columns {missing}; has {table.column_names}", path=path
        )

    def bad(column: str, row: int, what: str) -> DataFileError:
        value = table.column(column)[row].as_py()
        return DataFileError(
            f"{path}:row {row + 1}: column {column!r}: {what} (got {value!r})",
            path=path,
            field=column,
        )

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
    order = sorted_by(ts)
    return QuoteColumns(
        ts_event=ts[order],
        ts_init=ts_init[order],
        bid_price=src.column("best_bid_price")[order],
        bid_size=src.column("best_bid_qty")[order],
        ask_price=src.column("best_ask_price")[order],
        ask_size=src.column("best_ask_qty")[order],
    )


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
        raise DataFileError(
            f"{path}: expected one symbol, found {symbols}", path=path, field="symbol"
        )
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
