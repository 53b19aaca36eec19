"""``nhmm data import-ws``: raw Binance WebSocket recordings -> Nautilus catalog + import report.

Input: gzip (or plain) text, one message per line, ``<recv_ns> <json>``: combined-stream
envelopes ``{"stream": ..., "data": ...}`` for ``@depth``/``@depth@100ms`` (spot) or
``@depth@0ms`` (USD-M, with ``pu``), ``@trade``, ``@aggTrade``, ``@bookTicker`` and (USD-M)
``@markPrice`` / ``@markPrice@1s``, plus REST depth snapshot lines ``{"lastUpdateId": ...}``
without an envelope. Files given together are one
stream, in order. Sequencing and the book check are :class:`training.data.book.BinanceBookSync`.

Timestamps: ``ts_init`` is the receive stamp. ``ts_event`` is what Nautilus's adapter stamps
live, so a replay decides on the times a backtest of the recording does: ``T`` for USD-M depth
diffs (spot's have only ``E``), trades and USD-M ``bookTicker``, ``E`` for ``markPrice``; spot
``bookTicker`` carries no time, so it gets the latest exchange time seen on any stream (never
decreasing; quotes before the first exchange time get that first time).

Trades come from ``@trade`` (USD-M: only ``X == "MARKET"``); ``@aggTrade`` is used only when
the recording has no ``@trade`` stream for that symbol. A REST snapshot has no symbol: it
belongs to the one symbol whose depth the recording carries (ambiguity is an error).
Each USD-M ``markPriceUpdate`` becomes a ``FundingRateUpdate`` (``rate = r``, the running
estimate of the next settlement's rate; ``next_funding_ns = T``), stored with the symbol-day.

Nothing reaches the catalog until every line parsed: a corrupt line raises
:class:`~training.data.csv.DataFileError` (``"<file>:<line>: ..."``) and leaves the catalog as it
was. The instrument's precision is widened to fit the data (recorded in the report).

>>> _stream_kind(b'{"stream":"btcusdt@depth@100ms","data":{}}')
'depth'
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
from nautilus_trader.model.data import FundingRateUpdate
from tqdm import tqdm

from training.data.book import BinanceBookSync
from training.data.columns import BUYER
from training.data.columns import SELLER
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.csv import DataFileError
from training.data.csv import input_files
from training.data.csv import open_source
from training.data.instruments import fitted_instrument
from training.data.report import ImportReport
from training.data.sources._funding import funding_updates
from training.data.sources._funding import rate_text
from training.data.sources._importer import ImportWriter
from training.data.sources._importer import new_report
from training.errors import BadInputError

__all__ = ["WsImporter", "detect_market", "import_ws", "iter_lines"]

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
    T: int | None = None  # USD-M: the transaction time


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


class _MarkPrice(msgspec.Struct):
    E: int
    s: str
    r: str
    T: int


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
_DEC_MARK = _envelope(_MarkPrice)
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
    funding: list[tuple[int, int, str, int]] = field(default_factory=list)
    non_market_trades: int = 0


def iter_lines(path: Path) -> Iterator[bytes]:
    """Lines (with their ``\\n``) of a gzip or plain file (told by magic bytes)."""
    with open_source(path) as f:
        yield from f


def detect_market(path: Path, max_lines: int = 100_000) -> Literal["spot", "usdm"]:
    """``usdm`` if the first depth diff carries ``pu`` (futures), else ``spot``."""
    for i, line in enumerate(iter_lines(path)):
        if b'"depthUpdate"' in line:
            return "usdm" if b'"pu":' in line else "spot"
        if i >= max_lines:
            break
    raise DataFileError(
        f"{path}: no depthUpdate in the first {max_lines} lines; pass --market",
        path=path,
        field="market",
    )


_KINDS = {
    ord("d"): "depth",
    ord("t"): "trade",
    ord("a"): "aggTrade",
    ord("b"): "bookTicker",
    ord("m"): "markPrice",
}


def _stream_kind(rest: bytes) -> str:
    """``depth``/``trade``/``aggTrade``/``bookTicker``/``markPrice`` (else ``other``) from the
    stream name."""
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
            "markPrice": 0,
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
            raise DataFileError(
                f"{path}:{lineno}: {exc}", path=path, line=lineno, field=getattr(exc, "field", None)
            ) from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFileError(
                f"{path}: unreadable after line {lineno}: {exc}", path=path, line=lineno
            ) from exc
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

    def _exchange_ns(self, ms: int) -> int:
        """Exchange time ``ms`` in ns; the latest exchange time seen moves up to it."""
        ts = ms * MS
        if ts > self.last_exchange_ns:
            self.last_exchange_ns = ts
        return ts

    def _message(self, kind: str, rest: bytes, recv: int) -> None:
        if kind == "markPrice" and self.market != "usdm":
            kind = "other"  # funding is a perpetual's
        self.counts[kind if kind != "other" else "ignored"] += 1
        if kind == "depth":
            d = _DEC_DEPTH.decode(rest).data
            ts = self._exchange_ns(d.T if d.T is not None else d.E)
            self._state(d.s).sync.on_depth(d.U, d.u, d.pu, d.b, d.a, ts, recv)
        elif kind == "bookTicker":
            q = _DEC_TICKER.decode(rest).data
            st = self._state(q.s)
            ts = self._exchange_ns(q.T) if q.T is not None else self.last_exchange_ns
            if st.quotes_ts and ts < st.quotes_ts[-1]:
                ts = st.quotes_ts[-1]
            st.quotes_ts.append(ts)
            st.quotes_init.append(recv)
            st.quotes.append((q.b, q.B, q.a, q.A))
            st.sync.on_book_ticker(q.u, q.b, q.B, q.a, q.A)
        elif kind == "trade":
            t = _DEC_TRADE.decode(rest).data
            ts = self._exchange_ns(t.T)
            st = self._state(t.s)
            if t.X is not None and t.X != "MARKET":
                st.non_market_trades += 1
                return
            st.trades.append((ts, recv, t.p, t.q, SELLER if t.m else BUYER, t.t))
        elif kind == "aggTrade":
            a = _DEC_AGG.decode(rest).data
            ts = self._exchange_ns(a.T)
            self._state(a.s).aggs.append((ts, recv, a.p, a.q, SELLER if a.m else BUYER, a.a))
        elif kind == "markPrice":
            m = _DEC_MARK.decode(rest).data
            try:
                rate = rate_text(m.r)
            except ValueError as exc:
                raise BadInputError(f"markPrice field 'r': {exc}", field="r") from None
            if m.T <= 0:
                raise BadInputError(
                    f"markPrice field 'T': next funding time must be > 0, got {m.T}", field="T"
                )
            self._state(m.s).funding.append((self._exchange_ns(m.E), recv, rate, m.T * MS))

    def funding(self, symbol: str, instrument_id: str) -> list[FundingRateUpdate]:
        """The ``markPrice`` frames of one symbol as ``FundingRateUpdate``s of ``instrument_id``."""
        rows = self.symbols[symbol].funding
        if not rows:
            return []
        ts, recv, rates, nxt = zip(*rows, strict=True)
        return funding_updates(instrument_id, ts, recv, rates, nxt)

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
    paths = input_files(files)
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
        raise DataFileError(f"{paths[0]}: no market messages found", path=paths[0])
    events = {s: imp.events(s) for s in sorted(imp.symbols)}
    fitted = {s: fitted_instrument(s, mkt, ev, exchange_info) for s, ev in events.items()}
    report = new_report(name, "import-ws", [p.resolve() for p in paths])
    writer = ImportWriter(out, report)
    per_symbol: dict[str, dict[str, object]] = {}
    for sym, (inst, widened) in fitted.items():
        st = imp.symbols[sym]
        sync = st.sync
        funding = imp.funding(sym, inst.id.value)
        written = writer.write(inst, events[sym], widened=widened, data=funding)
        report.gaps += sync.gaps
        report.resyncs += sync.resyncs
        report.bbo_checks += sync.bbo_checks
        report.bbo_mismatches += sync.bbo_mismatches
        in_catalog = sum(
            int(writer.catalog.partition(sd)["counts"]["order_book_deltas"])  # type: ignore[index]
            for sd in written
        )
        per_symbol[inst.id.value] = {
            "snapshots": sync.snapshots,
            "depth_applied": sync.applied,
            "depth_dropped": sync.dropped,
            "depth_untrusted": sync.skipped_untrusted,
            "non_market_trades": st.non_market_trades,
            "trade_source": "trade" if st.trades else "aggTrade",
            "funding_updates": len(funding),
            "price_precision": inst.price_precision,
            "size_precision": inst.size_precision,
            "price_increment": str(inst.price_increment),
            "size_increment": str(inst.size_increment),
            "deltas_in_catalog": in_catalog,
            "bbo_mismatch_examples": sync.mismatch_examples,
        }
    report.extra.update(
        market=mkt,
        catalog=str(writer.catalog.root),
        lines=imp.lines,
        messages=dict(imp.counts),
        symbols=per_symbol,
    )
    return writer.close(t0)
