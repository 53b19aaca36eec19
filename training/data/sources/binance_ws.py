"""``nhmm data import-ws``: raw Binance WebSocket recordings -> Nautilus catalog + import report.

Input: gzip (or plain) text, one message per line, ``<recv_ns> <json>``: combined-stream
envelopes ``{"stream": ..., "data": ...}`` for ``@depth``/``@depth@100ms`` (spot) or
``@depth@0ms`` (USD-M, with ``pu``), ``@trade``, ``@aggTrade`` and ``@bookTicker``, plus REST
depth snapshot lines ``{"lastUpdateId": ...}`` without an envelope. Files given together are one
stream, in order. Sequencing and the book check are :class:`training.data.book.BinanceBookSync`.

Timestamps: ``ts_init`` is the receive stamp. ``ts_event`` is ``E`` for depth diffs, ``T`` for
trades, ``T`` for USD-M ``bookTicker``; spot ``bookTicker`` carries no time, so it gets the latest
exchange time seen on any stream (never decreasing; quotes before the first exchange time get
that first time). Trades come from ``@trade`` (USD-M: only ``X == "MARKET"``); ``@aggTrade`` is
used only when the recording has no ``@trade`` stream for that symbol. A REST snapshot has no
symbol: it belongs to the one symbol whose depth the recording carries (ambiguity is an error).

Nothing reaches the catalog until every line parsed: a corrupt line raises
``ValueError("<file>:<line>: ...")`` and leaves the catalog as it was.

>>> from click.testing import CliRunner
>>> CliRunner().invoke(cli, ["--help"]).output.splitlines()[0]
'Usage: cli [OPTIONS] FILE...'
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import click
import msgspec
import numpy as np
from nautilus_trader.model.instruments import Instrument
from tqdm import tqdm

from training.data.book import BinanceBookSync
from training.data.catalog import MarketCatalog, precision_needed
from training.data.columns import BUYER, SELLER, MarketEvents, QuoteColumns, TradeColumns
from training.data.instruments import binance_instrument
from training.data.report import ImportReport

MS = 1_000_000
Level = tuple[float, float]


class _Depth(msgspec.Struct):
    E: int
    U: int
    u: int
    s: str
    b: list[Level]
    a: list[Level]
    pu: int | None = None


class _Trade(msgspec.Struct):
    T: int
    t: int
    s: str
    p: float
    q: float
    m: bool
    X: str | None = None


class _AggTrade(msgspec.Struct):
    T: int
    a: int
    s: str
    p: float
    q: float
    m: bool


class _Ticker(msgspec.Struct):
    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    T: int | None = None
    E: int | None = None


class _Snapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]


def _envelope(data_type: type) -> msgspec.json.Decoder:
    env = msgspec.defstruct(f"Env{data_type.__name__}", [("stream", str), ("data", data_type)])
    return msgspec.json.Decoder(env, strict=False)


_DEC_DEPTH = _envelope(_Depth)
_DEC_TRADE = _envelope(_Trade)
_DEC_AGG = _envelope(_AggTrade)
_DEC_TICKER = _envelope(_Ticker)
_DEC_SNAPSHOT = msgspec.json.Decoder(_Snapshot, strict=False)
_DEC_ANY = msgspec.json.Decoder()


@dataclass
class _SymbolState:
    """Everything collected for one symbol while reading."""

    sync: BinanceBookSync
    trades: list[tuple[int, int, float, float, int, int]] = field(default_factory=list)
    aggs: list[tuple[int, int, float, float, int, int]] = field(default_factory=list)
    quotes_ts: list[int] = field(default_factory=list)
    quotes_init: list[int] = field(default_factory=list)
    quotes: list[tuple[float, float, float, float]] = field(default_factory=list)
    non_market_trades: int = 0


def iter_lines(path: Path) -> Iterator[bytes]:
    """Lines (with their ``\\n``) of a gzip or plain file, sniffed by the gzip magic bytes."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
        yield from f


def detect_market(path: Path, max_lines: int = 100_000) -> Literal["spot", "usdm"]:
    """``usdm`` if the first depth diff carries ``pu`` (futures), else ``spot``."""
    for i, line in enumerate(iter_lines(path)):
        if b'"depthUpdate"' in line:
            return "usdm" if b'"pu":' in line else "spot"
        if i >= max_lines:
            break
    raise ValueError(f"{path}: no depthUpdate in the first {max_lines} lines; pass --market")


_KINDS = {ord("d"): "depth", ord("t"): "trade", ord("a"): "aggTrade", ord("b"): "bookTicker"}


def _stream_kind(rest: bytes) -> str:
    """``depth``/``trade``/``aggTrade``/``bookTicker`` (else ``other``) from the stream name."""
    at = rest.find(b"@", 11)
    kind = _KINDS.get(rest[at + 1], "other") if at > 0 else "other"
    if kind == "trade" and not rest.startswith(b"trade", at + 1):
        return "other"
    return kind


class WsImporter:
    """Reads recordings line by line into per-symbol books, trades and quotes."""

    def __init__(self, market: Literal["spot", "usdm"]) -> None:
        self.market = market
        self.symbols: dict[str, _SymbolState] = {}
        self.lines = 0
        self.counts: dict[str, int] = {
            "depth": 0,
            "trade": 0,
            "aggTrade": 0,
            "bookTicker": 0,
            "snapshot": 0,
            "ignored": 0,
        }
        self.last_exchange_ns = -1
        self._orphan_snapshot: tuple[_Snapshot, int] | None = None

    def _state(self, symbol: str) -> _SymbolState:
        st = self.symbols.get(symbol)
        if st is None:
            st = self.symbols[symbol] = _SymbolState(BinanceBookSync(self.market))
            if self._orphan_snapshot is not None:
                snap, recv = self._orphan_snapshot
                self._orphan_snapshot = None
                self._apply_snapshot(st, snap, recv)
        return st

    def _apply_snapshot(self, st: _SymbolState, snap: _Snapshot, recv: int) -> None:
        ts_event = self.last_exchange_ns if self.last_exchange_ns >= 0 else recv
        st.sync.on_snapshot(snap.lastUpdateId, snap.bids, snap.asks, ts_event, recv)

    def read(self, path: Path, progress: tqdm | None = None) -> None:
        lineno = 0
        try:
            for lineno, line in enumerate(iter_lines(path), 1):
                self._line(line)
                if progress is not None and lineno % 20_000 == 0:
                    progress.update(20_000)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: unreadable after line {lineno}: {exc}") from exc
        if progress is not None:
            progress.update(lineno % 20_000)

    def _line(self, line: bytes) -> None:
        self.lines += 1
        sp = line.find(b" ")
        if sp <= 0:
            if not line.strip():
                return
            raise ValueError("expected '<recv_ns> <json>'")
        recv = int(line[:sp])
        rest = line[sp + 1 :]
        if rest.startswith(b'{"stream":"'):
            self._message(_stream_kind(rest), rest, recv)
        elif rest.startswith(b'{"lastUpdateId"'):
            self._snapshot(_DEC_SNAPSHOT.decode(rest), recv)
        else:
            obj = _DEC_ANY.decode(rest)
            if isinstance(obj, dict) and "lastUpdateId" in obj:
                self._snapshot(msgspec.convert(obj, _Snapshot, strict=False), recv)
            elif isinstance(obj, dict) and isinstance(obj.get("stream"), str) and "data" in obj:
                kind = _stream_kind(b'{"stream":"' + obj["stream"].encode() + b'"')
                self._message(kind, msgspec.json.encode(obj), recv)
            else:
                raise ValueError("neither a stream envelope nor a depth snapshot")

    def _snapshot(self, snap: _Snapshot, recv: int) -> None:
        self.counts["snapshot"] += 1
        depth_symbols = [
            s
            for s, st in self.symbols.items()
            if st.sync.snapshots or st.sync.applied or st.sync.skipped_untrusted
        ]
        if len(depth_symbols) > 1:
            raise ValueError(
                f"REST snapshot without symbol in a multi-symbol recording {sorted(depth_symbols)}"
            )
        if depth_symbols:
            self._apply_snapshot(self.symbols[depth_symbols[0]], snap, recv)
        else:
            self._orphan_snapshot = (snap, recv)

    def _message(self, kind: str, rest: bytes, recv: int) -> None:
        if kind == "depth":
            d = _DEC_DEPTH.decode(rest).data
            self.counts["depth"] += 1
            ts = d.E * MS
            if ts > self.last_exchange_ns:
                self.last_exchange_ns = ts
            st = self._state(d.s)
            st.sync.on_depth(d.U, d.u, d.pu, d.b, d.a, ts, recv)
        elif kind == "bookTicker":
            q = _DEC_TICKER.decode(rest).data
            self.counts["bookTicker"] += 1
            st = self._state(q.s)
            if q.T is not None:
                ts = q.T * MS
                if ts > self.last_exchange_ns:
                    self.last_exchange_ns = ts
            else:
                ts = self.last_exchange_ns
            if st.quotes_ts and ts < st.quotes_ts[-1]:
                ts = st.quotes_ts[-1]
            st.quotes_ts.append(ts)
            st.quotes_init.append(recv)
            st.quotes.append((q.b, q.B, q.a, q.A))
            st.sync.on_book_ticker(q.u, q.b, q.B, q.a, q.A)
        elif kind == "trade":
            t = _DEC_TRADE.decode(rest).data
            self.counts["trade"] += 1
            ts = t.T * MS
            if ts > self.last_exchange_ns:
                self.last_exchange_ns = ts
            st = self._state(t.s)
            if t.X is not None and t.X != "MARKET":
                st.non_market_trades += 1
                return
            st.trades.append((ts, recv, t.p, t.q, SELLER if t.m else BUYER, t.t))
        elif kind == "aggTrade":
            a = _DEC_AGG.decode(rest).data
            self.counts["aggTrade"] += 1
            ts = a.T * MS
            if ts > self.last_exchange_ns:
                self.last_exchange_ns = ts
            self._state(a.s).aggs.append((ts, recv, a.p, a.q, SELLER if a.m else BUYER, a.a))
        else:
            self.counts["ignored"] += 1

    def events(self, symbol: str) -> MarketEvents:
        """Columns for one symbol (call after reading every file)."""
        st = self.symbols[symbol]
        rows = st.trades or st.aggs
        trades = TradeColumns.from_rows(rows) if rows else TradeColumns.empty()
        qts = np.asarray(st.quotes_ts, dtype=np.int64)
        if len(qts) and (qts < 0).any():
            first = self.last_exchange_ns
            known = qts[qts >= 0]
            qts = np.where(qts < 0, known[0] if len(known) else first, qts)
        qv = np.asarray(st.quotes, dtype=np.float64).reshape(-1, 4)
        quotes = QuoteColumns(
            ts_event=qts,
            ts_init=np.asarray(st.quotes_init, dtype=np.int64),
            bid_price=qv[:, 0].copy(),
            bid_size=qv[:, 1].copy(),
            ask_price=qv[:, 2].copy(),
            ask_size=qv[:, 3].copy(),
        )
        return MarketEvents(st.sync.deltas(), trades, quotes)


def _instrument(
    symbol: str, market: Literal["spot", "usdm"], exchange_info: Path | None, ev: MarketEvents
) -> Instrument:
    """The exchangeInfo instrument, precision raised if the data is finer than tick/step."""
    base = binance_instrument(symbol, market, exchange_info)
    prices = [ev.deltas.price, ev.trades.price, ev.quotes.bid_price, ev.quotes.ask_price]
    sizes = [ev.deltas.size, ev.trades.size, ev.quotes.bid_size, ev.quotes.ask_size]
    pp = precision_needed(np.concatenate(prices), base.price_precision)
    sp = precision_needed(np.concatenate(sizes), base.size_precision)
    if (pp, sp) == (base.price_precision, base.size_precision):
        return base
    return binance_instrument(symbol, market, exchange_info, pp, sp)


def import_ws(
    files: Sequence[str | Path],
    out: str | Path,
    market: Literal["auto", "spot", "usdm"] = "auto",
    exchange_info: Path | None = None,
    name: str | None = None,
    progress: bool = False,
) -> tuple[ImportReport, Path]:
    """Import recordings into the catalog at ``out``; returns the report and its JSON path."""
    t0 = time.perf_counter()
    paths = [Path(f) for f in files]
    if not paths:
        raise ValueError("no input files")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    mkt: Literal["spot", "usdm"] = detect_market(paths[0]) if market == "auto" else market
    imp = WsImporter(mkt)
    bar = tqdm(desc="import-ws", unit=" lines", disable=not progress, unit_scale=True)
    try:
        for p in paths:
            bar.set_postfix_str(p.name)
            imp.read(p, bar)
    finally:
        bar.close()
    if not imp.symbols:
        raise ValueError(f"{paths[0]}: no market messages found")
    events = {s: imp.events(s) for s in sorted(imp.symbols)}
    instruments = {s: _instrument(s, mkt, exchange_info, ev) for s, ev in events.items()}
    catalog = MarketCatalog(out)
    report = ImportReport(name=name or f"import-ws-{paths[0].name.split('.')[0]}")
    report.sources = [str(p.resolve()) for p in paths]
    per_symbol: dict[str, dict[str, object]] = {}
    for sym, inst in instruments.items():
        ev = events[sym]
        sync = imp.symbols[sym].sync
        written = catalog.write(inst, ev)
        report.instrument_ids.append(inst.id.value)
        report.symbol_days += [str(sd) for sd in written]
        report.deltas += len(ev.deltas)
        report.trades += len(ev.trades)
        report.quotes += len(ev.quotes)
        report.gaps += sync.gaps
        report.resyncs += sync.resyncs
        report.bbo_checks += sync.bbo_checks
        report.bbo_mismatches += sync.bbo_mismatches
        for cols in (ev.deltas, ev.trades, ev.quotes):
            if len(cols):
                report.add_ts(int(cols.ts_event.min()))
                report.add_ts(int(cols.ts_event.max()))
        in_catalog = sum(
            int(catalog.partition(sd)["counts"]["order_book_deltas"])  # type: ignore[index]
            for sd in written
        )
        per_symbol[inst.id.value] = {
            "snapshots": sync.snapshots,
            "depth_applied": sync.applied,
            "depth_dropped": sync.dropped,
            "depth_untrusted": sync.skipped_untrusted,
            "non_market_trades": imp.symbols[sym].non_market_trades,
            "trade_source": "trade" if imp.symbols[sym].trades else "aggTrade",
            "price_precision": inst.price_precision,
            "size_precision": inst.size_precision,
            "price_increment": str(inst.price_increment),
            "size_increment": str(inst.size_increment),
            "deltas_in_catalog": in_catalog,
            "bbo_mismatch_examples": sync.mismatch_examples,
        }
    report.events = report.deltas + report.trades + report.quotes
    report.extra = {
        "market": mkt,
        "catalog": str(catalog.root),
        "lines": imp.lines,
        "messages": dict(imp.counts),
        "symbols": per_symbol,
    }
    report.finish(time.perf_counter() - t0)
    return report, catalog.write_report(report.name, report)


@click.command()
@click.argument(
    "files",
    nargs=-1,
    required=True,
    metavar="FILE...",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Catalog root.",
)
@click.option(
    "--market",
    type=click.Choice(["auto", "spot", "usdm"]),
    default="auto",
    show_default=True,
    help="Binance market; auto = usdm when depth diffs carry 'pu'.",
)
@click.option(
    "--exchange-info",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Binance exchangeInfo JSON (default: the bundled snapshot).",
)
@click.option("--name", default=None, help="Report name (CATALOG/reports/<name>.json).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def cli(
    files: tuple[Path, ...],
    out: Path,
    market: Literal["auto", "spot", "usdm"],
    exchange_info: Path | None,
    name: str | None,
    progress: bool,
) -> None:
    """Import raw Binance WebSocket recordings (FILE... in stream order) into CATALOG."""
    try:
        report, path = import_ws(files, out, market, exchange_info, name, progress)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{report.events} events ({report.deltas} deltas, {report.trades} trades, "
        f"{report.quotes} quotes), gaps={report.gaps} resyncs={report.resyncs} "
        f"bbo {report.bbo_mismatches}/{report.bbo_checks} mismatches, "
        f"{report.events_per_s:,.0f} events/s"
    )
    click.echo(str(path))
