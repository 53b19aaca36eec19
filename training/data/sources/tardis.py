"""Tardis.dev CSV (``incremental_book_L2``, ``trades``; plain or ``.gz``) → catalog:
``nhmm data import-tardis``.

``incremental_book_L2``: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``
(µs). A run of ``is_snapshot`` rows is a full book: CLEAR, then ADDs, all ``F_SNAPSHOT``; ``amount`` 0
deletes a level; rows sharing ``timestamp`` + ``local_timestamp`` are one exchange message, its last
delta carries ``F_LAST``. ``trades``: ``exchange,symbol,timestamp,local_timestamp,id,side,price,
amount`` (``side`` is the taker's). Exchange ``binance`` is spot, ``binance-futures`` is USD-M.
``timestamp`` is ``ts_event``, ``local_timestamp`` is ``ts_init``. Tardis carries no update ids, so
gaps cannot be seen here; every snapshot after the first is counted as a resync.

>>> TARDIS_MARKETS["binance-futures"]
'usdm'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from training.data.catalog import MarketCatalog, SymbolDay
from training.data.columns import (
    ADD,
    BUY,
    BUYER,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    SELL,
    SELLER,
    UPDATE,
    DeltaColumns,
    MarketEvents,
    TradeColumns,
)
from training.data.report import ImportReport
from training.data.sources.binance_public import (
    CsvTable,
    DataFileError,
    Layout,
    Market,
    empty_events,
    fit_events,
    read_csv,
)

TARDIS_MARKETS: dict[str, Market] = {"binance": "spot", "binance-futures": "usdm"}

BOOK_LAYOUT = Layout.of(
    "exchange:s,symbol:s,timestamp:i,local_timestamp:i,is_snapshot:b,side:s,price:f,amount:f"
)
TRADES_LAYOUT = Layout.of(
    "exchange:s,symbol:s,timestamp:i,local_timestamp:i,id:s,side:s,price:f,amount:f"
)


@dataclass(frozen=True)
class TardisPart:
    """Events of one (exchange, symbol) from one Tardis file, plus resyncs seen."""

    market: Market
    symbol: str
    events: MarketEvents
    resyncs: int = 0


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
        events = empty_events()
        parts.append(
            TardisPart(market, symbol, MarketEvents(deltas, events.trades, events.quotes), resyncs)
        )
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
        events = empty_events()
        parts.append(TardisPart(market, symbol, MarketEvents(events.deltas, trades, events.quotes)))
    return parts


def detect_tardis_kind(path: Path) -> str:
    """``book`` or ``trades`` from the file name (Tardis: ``binance_incremental_book_L2_...``)."""
    name = path.name.lower()
    if "incremental_book_l2" in name:
        return "book"
    if "trades" in name:
        return "trades"
    raise DataFileError(f"{path}: cannot tell incremental_book_L2 from trades by name; pass --kind")


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
    from training.data.instruments import binance_instrument

    t0 = time.perf_counter()
    paths = [Path(p) for p in paths]
    books: dict[tuple[Market, str], list[DeltaColumns]] = {}
    trades: dict[tuple[Market, str], list[TradeColumns]] = {}
    resyncs = 0
    for path in tqdm(paths, desc="parse", unit="file", disable=not progress):
        if not path.is_file():
            raise DataFileError(f"{path}: no such file")
        file_kind = kind or detect_tardis_kind(path)
        for part in parse_book(path) if file_kind == "book" else parse_trades(path):
            key = (part.market, part.symbol)
            if file_kind == "book":
                books.setdefault(key, []).append(part.events.deltas)
            else:
                trades.setdefault(key, []).append(part.events.trades)
            resyncs += part.resyncs

    report = ImportReport(name=name or f"import-tardis-{paths[0].name.split('.')[0]}")
    report.sources = [str(p) for p in paths]
    report.resyncs = resyncs
    plans = []
    for key in sorted(set(books) | set(trades)):
        market, symbol = key
        instrument = binance_instrument(symbol, market, exchange_info)
        t = TradeColumns.concat(trades.get(key, []))
        if len(trades.get(key, [])) > 1:
            t = t.take(np.argsort(t.ts_event, kind="stable"))
        events = MarketEvents(DeltaColumns.concat(books.get(key, [])), t, empty_events().quotes)
        instrument, note = fit_events(instrument, events)
        if note:
            report.extra.setdefault("precision_widened", {})[instrument.id.value] = note
        plans.append((instrument, events))
    catalog = MarketCatalog(out)  # only now: a bad file or symbol leaves no catalog behind
    days: set[SymbolDay] = set()
    for instrument, events in plans:
        days.update(catalog.write(instrument, events))
        report.instrument_ids.append(instrument.id.value)
        report.deltas += len(events.deltas)
        report.trades += len(events.trades)
        for cols in (events.deltas, events.trades):
            if len(cols):
                report.add_ts(int(cols.ts_event.min()))
                report.add_ts(int(cols.ts_event.max()))
    report.events = report.deltas + report.trades
    report.symbol_days = [str(sd) for sd in sorted(days)]
    report.finish(time.perf_counter() - t0)
    return report, catalog.write_report(report.name, report)


@click.command(name="import-tardis")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Catalog root.")
@click.option(
    "--kind",
    type=click.Choice(["book", "trades"]),
    default=None,
    help="incremental_book_L2 (book) or trades; default: from the file name.",
)
@click.option("--exchange-info", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--name", default=None, help="Report name (CATALOG/reports/<name>.json).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def cli(
    files: tuple[Path, ...],
    out: Path,
    kind: str | None,
    exchange_info: Path | None,
    name: str | None,
    progress: bool,
) -> None:
    """Import Tardis.dev incremental_book_L2 / trades CSV(.gz) for binance / binance-futures."""
    try:
        report, path = import_tardis(
            files, out, kind=kind, exchange_info=exchange_info, name=name, progress=progress
        )
    except (ValueError, KeyError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from exc
    click.echo(
        f"{report.events} events ({report.deltas} deltas, {report.trades} trades), "
        f"resyncs {report.resyncs}"
    )
    click.echo(str(path))
