"""Tardis.dev CSV (``incremental_book_L2``, ``trades``; plain or ``.gz``) → catalog:
``nhmm data import-tardis``.

``incremental_book_L2``: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``
(µs). A run of ``is_snapshot`` rows is a full book: CLEAR, then ADDs, all ``F_SNAPSHOT``; ``amount`` 0
deletes a level; rows sharing ``timestamp`` + ``local_timestamp`` are one exchange message, its last
delta carries ``F_LAST``. ``trades``: ``exchange,symbol,timestamp,local_timestamp,id,side,price,
amount`` (``side`` is the taker's). ``derivative_ticker`` (USD-M only): ``exchange,symbol,timestamp,
local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,
index_price,mark_price``; a ``FundingRateUpdate`` whenever ``funding_rate`` changes (rows with it
empty are skipped; ``next_funding_ns`` from ``funding_timestamp`` when given).
Exchange ``binance`` is spot, ``binance-futures`` is USD-M.
``timestamp`` is ``ts_event``, ``local_timestamp`` is ``ts_init``. Tardis carries no update ids, so
gaps cannot be seen here; every snapshot after the first is counted as a resync.

>>> TARDIS_MARKETS["binance-futures"]
'usdm'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

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
from training.data.csv import CsvTable
from training.data.csv import DataFileError
from training.data.csv import Layout
from training.data.csv import input_files
from training.data.csv import read_csv
from training.data.instruments import Market
from training.data.instruments import fitted_instrument
from training.data.report import ImportReport
from training.data.sources._funding import funding_updates
from training.data.sources._funding import rate_text
from training.data.sources._importer import ImportWriter
from training.data.sources._importer import new_report

__all__ = [
    "KINDS",
    "TARDIS_MARKETS",
    "TardisPart",
    "book_deltas",
    "detect_tardis_kind",
    "import_tardis",
    "parse_book",
    "parse_derivative_ticker",
    "parse_trades",
]

KINDS = ("book", "trades", "derivative_ticker")
TARDIS_MARKETS: dict[str, Market] = {"binance": "spot", "binance-futures": "usdm"}

BOOK_LAYOUT = Layout.of(
    "exchange:s,symbol:s,timestamp:i,local_timestamp:i,is_snapshot:b,side:s,price:f,amount:f"
)
TRADES_LAYOUT = Layout.of(
    "exchange:s,symbol:s,timestamp:i,local_timestamp:i,id:s,side:s,price:f,amount:f"
)
TICKER_LAYOUT = Layout.of(  # every value after the stamps may be empty: read as text
    "exchange:s,symbol:s,timestamp:i,local_timestamp:i,funding_timestamp:s,funding_rate:s,"
    "predicted_funding_rate:s,open_interest:s,last_price:s,index_price:s,mark_price:s"
)


@dataclass(frozen=True)
class TardisPart:
    """Events of one (exchange, symbol) from one Tardis file, plus resyncs seen."""

    market: Market
    symbol: str
    events: MarketEvents
    resyncs: int = 0
    funding: tuple[tuple[int, int, str, int | None], ...] = ()


def _split_by_symbol(src: CsvTable) -> list[tuple[Market, str, np.ndarray]]:
    """(market, SYMBOL, row mask) for each (exchange, symbol) in the file."""
    exchanges = list(TARDIS_MARKETS)
    exchange = src.codes("exchange", exchanges)
    symbol_col = pc.utf8_upper(src.table.column("symbol"))
    out = []
    for sym in sorted(pc.unique(symbol_col).to_pylist()):
        is_sym = pc.equal(symbol_col, sym).to_numpy(zero_copy_only=False)
        for i, ex in enumerate(exchanges):
            mask = is_sym & (exchange == i)
            if mask.any():
                out.append((TARDIS_MARKETS[ex], sym, mask))
    return out


def _timestamps(src: CsvTable) -> tuple[np.ndarray, np.ndarray]:
    return src.ns("timestamp"), src.ns("local_timestamp")


def book_deltas(
    ts: np.ndarray,
    local: np.ndarray,
    is_snapshot: np.ndarray,
    is_bid: np.ndarray,
    price: np.ndarray,
    amount: np.ndarray,
) -> tuple[DeltaColumns, int]:
    """Rows of one symbol (file order) → L2 deltas and the number of snapshots after the first.

    >>> d, resyncs = book_deltas(
    ...     np.array([5, 5, 9]), np.array([6, 6, 10]), np.array([True, True, False]),
    ...     np.array([True, False, True]), np.array([10.0, 11.0, 10.0]), np.array([1.0, 2.0, 0.0]))
    >>> d.action.tolist(), d.flags.tolist(), resyncs
    ([4, 1, 1, 3], [32, 32, 160, 128], 0)
    """
    n = len(ts)
    if n == 0:
        return DeltaColumns.empty(), 0
    prev_snap = np.concatenate([[False], is_snapshot[:-1]])
    starts = is_snapshot & ~prev_snap  # first row of each snapshot run: CLEAR goes before it
    next_same = np.zeros(n, dtype=bool)
    next_same[:-1] = (
        (ts[1:] == ts[:-1]) & (local[1:] == local[:-1]) & (is_snapshot[1:] == is_snapshot[:-1])
    )
    # a snapshot run is one message even if Tardis spreads it over several timestamps
    next_same[:-1] |= is_snapshot[:-1] & is_snapshot[1:] & ~starts[1:]
    last = ~next_same

    action = np.where(is_snapshot, ADD, np.where(amount == 0, DELETE, UPDATE)).astype(np.uint8)
    flags = (np.where(is_snapshot, F_SNAPSHOT, 0) | np.where(last, F_LAST, 0)).astype(np.uint8)
    side = np.where(is_bid, BUY, SELL).astype(np.uint8)

    # Insert one CLEAR row before each snapshot start.
    n_clear = int(starts.sum())
    pos = np.arange(n) + np.cumsum(starts)  # position of each row in the output
    clear_pos = pos[starts] - 1
    total = n + n_clear

    def place(values: np.ndarray, clear_value: float | int, dtype: type) -> np.ndarray:
        out = np.empty(total, dtype=dtype)
        out[pos] = values
        out[clear_pos] = clear_value
        return out

    deltas = DeltaColumns(
        ts_event=place(ts, 0, np.int64),
        ts_init=place(local, 0, np.int64),
        action=place(action, CLEAR, np.uint8),
        side=place(side, 0, np.uint8),
        price=place(price.astype(np.float64), 0.0, np.float64),
        size=place(amount.astype(np.float64), 0.0, np.float64),
        flags=place(flags, F_SNAPSHOT, np.uint8),
        sequence=np.zeros(total, dtype=np.uint64),
    )
    deltas.ts_event[clear_pos] = ts[starts]
    deltas.ts_init[clear_pos] = local[starts]
    return deltas, max(n_clear - 1, 0)


def parse_book(path: Path) -> list[TardisPart]:
    """An ``incremental_book_L2`` CSV(.gz) → one part per (exchange, symbol)."""
    src = read_csv(path, [BOOK_LAYOUT])
    ts, local = _timestamps(src)
    is_bid = src.codes("side", ["ask", "bid"]) == 1
    price, amount = src.column("price"), src.column("amount")
    src.require(price <= 0, "price", "price must be > 0")
    src.require(amount < 0, "amount", "amount must be >= 0")
    is_snapshot = src.column("is_snapshot").astype(bool)
    parts = []
    for market, symbol, mask in _split_by_symbol(src):
        deltas, resyncs = book_deltas(
            ts[mask], local[mask], is_snapshot[mask], is_bid[mask], price[mask], amount[mask]
        )
        events = MarketEvents(deltas, TradeColumns.empty(), QuoteColumns.empty())
        parts.append(TardisPart(market, symbol, events, resyncs))
    return parts


def parse_trades(path: Path) -> list[TardisPart]:
    """A ``trades`` CSV(.gz) → one part per (exchange, symbol); ``side`` buy/sell/unknown is the
    aggressor (unknown → 0, no aggressor)."""
    src = read_csv(path, [TRADES_LAYOUT])
    ts, local = _timestamps(src)
    side = src.codes("side", ["unknown", "buy", "sell"])
    price, amount = src.column("price"), src.column("amount")
    src.require(price <= 0, "price", "price must be > 0")
    src.require(amount <= 0, "amount", "amount must be > 0")
    ids = src.table.column("id")
    numeric = pc.match_substring_regex(ids, r"^[0-9]+$").to_numpy(zero_copy_only=False)
    src.require(~numeric, "id", "expected a numeric trade id")
    trade_id = pc.cast(ids, pa.int64()).to_numpy()
    aggressor = np.choose(side, [0, BUYER, SELLER]).astype(np.uint8)
    parts = []
    for market, symbol, mask in _split_by_symbol(src):
        order = np.argsort(ts[mask], kind="stable")
        trades = TradeColumns(
            ts_event=ts[mask][order],
            ts_init=local[mask][order],
            price=price[mask][order],
            size=amount[mask][order],
            aggressor=aggressor[mask][order],
            trade_id=trade_id[mask][order],
        )
        events = MarketEvents(DeltaColumns.empty(), trades, QuoteColumns.empty())
        parts.append(TardisPart(market, symbol, events))
    return parts


def parse_derivative_ticker(path: Path) -> list[TardisPart]:
    """A ``derivative_ticker`` CSV(.gz) → one part per (exchange, symbol) holding its funding:
    ``(timestamp, local_timestamp, rate, funding_timestamp | None)`` whenever the rate changes.
    A rate or funding time that does not parse names ``file:line`` and the column."""
    src = read_csv(path, [TICKER_LAYOUT])
    ts, local = _timestamps(src)
    rates = src.table.column("funding_rate").to_pylist()
    next_ts = src.table.column("funding_timestamp").to_pylist()
    parts = []
    for market, symbol, mask in _split_by_symbol(src):
        if market != "usdm":
            raise src.fail(int(np.argmax(mask)), "exchange", "funding is a perpetual's (USD-M)")
        rows: list[tuple[int, int, str, int | None]] = []
        last: Decimal | None = None
        for i in np.flatnonzero(mask).tolist():
            if rates[i] == "":
                continue
            try:
                value = Decimal(rate_text(rates[i]))
            except ValueError as exc:
                raise src.fail(i, "funding_rate", str(exc)) from None
            if next_ts[i] and not next_ts[i].isdigit():
                raise src.fail(i, "funding_timestamp", "expected a µs timestamp")
            nxt = int(next_ts[i]) * 1_000 if next_ts[i] else None
            if value != last:
                rows.append((int(ts[i]), int(local[i]), rates[i], nxt))
                last = value
        empty = MarketEvents(DeltaColumns.empty(), TradeColumns.empty(), QuoteColumns.empty())
        parts.append(TardisPart(market, symbol, empty, funding=tuple(rows)))
    return parts


def detect_tardis_kind(path: Path) -> str:
    """``book``, ``trades`` or ``derivative_ticker`` from the file name (Tardis:
    ``binance_incremental_book_L2_...``)."""
    name = path.name.lower()
    if "incremental_book_l2" in name:
        return "book"
    if "derivative_ticker" in name:
        return "derivative_ticker"
    if "trades" in name:
        return "trades"
    raise DataFileError(
        f"{path}: cannot tell incremental_book_L2, trades or derivative_ticker by name; "
        "pass --kind",
        path=path,
        field="kind",
    )


def import_tardis(
    paths: Sequence[Path],
    out: Path,
    *,
    kind: str | None = None,
    exchange_info: Path | None = None,
    name: str | None = None,
    progress: bool = True,
) -> tuple[ImportReport, Path]:
    """Parse every file (a bad row aborts before anything is written), then write one partition
    per symbol-day per instrument and the report; returns (report, report path).

    Book files given in order are one stream per symbol (each Tardis day opens with a snapshot).
    """
    t0 = time.perf_counter()
    paths = input_files(paths)
    books: dict[tuple[Market, str], list[DeltaColumns]] = {}
    trades: dict[tuple[Market, str], list[TradeColumns]] = {}
    funding: dict[tuple[Market, str], list[tuple[int, int, str, int | None]]] = {}
    resyncs = 0
    parsers = {
        "book": parse_book,
        "trades": parse_trades,
        "derivative_ticker": parse_derivative_ticker,
    }
    for path in tqdm(paths, desc="parse", unit="file", disable=not progress):
        file_kind = kind or detect_tardis_kind(path)
        for part in parsers[file_kind](path):
            key = (part.market, part.symbol)
            if file_kind == "book":
                books.setdefault(key, []).append(part.events.deltas)
            elif file_kind == "trades":
                trades.setdefault(key, []).append(part.events.trades)
            else:
                funding.setdefault(key, []).extend(part.funding)
            resyncs += part.resyncs
    plans = []
    for key in sorted(set(books) | set(trades) | set(funding)):
        t = TradeColumns.concat(trades.get(key, []))
        if len(trades.get(key, [])) > 1:
            t = t.take(np.argsort(t.ts_event, kind="stable"))
        events = MarketEvents(DeltaColumns.concat(books.get(key, [])), t, QuoteColumns.empty())
        plans.append((*fitted_instrument(key[1], key[0], events, exchange_info), events, key))

    report = new_report(name, "import-tardis", paths)
    report.resyncs = resyncs
    report.extra["funding_updates"] = 0
    writer = ImportWriter(out, report)
    for instrument, widened, events, key in plans:
        rows = sorted(funding.get(key, []), key=lambda r: r[1])  # delivery order
        updates = []
        if rows:
            ts, local, rates, nxt = zip(*rows, strict=True)
            updates = funding_updates(instrument.id.value, ts, local, rates, nxt)
        writer.write(instrument, events, widened=widened, data=updates)
        report.extra["funding_updates"] += len(updates)
    return writer.close(t0)
