"""A Binance WebSocket recording, cut to what a venue can replay without a sequence gap.

Input is the ``nhmm data import-ws`` format (``../shared/data/binance-ws``): gzip or plain lines
``<recv_ns> <raw JSON>``, combined-stream envelopes plus one REST depth snapshot line; several
files given together are one stream. :func:`load_recording` keeps each market message's raw
``data`` bytes and finds the **sync point** with the project's own Binance sequencing
(:class:`training.data.book.BinanceBookSync`): the book starts at the snapshot, the replay at the
first diff that bridges it (spot ``U <= L+1 <= u``, USD-M ``U <= L <= u``; that diff usually
arrives *before* the snapshot line). Every later diff must continue the chain: a gap is a
:class:`~training.data.csv.DataFileError` naming the line, because the adapter never checks
``U``/``u``/``pu`` and would silently build a wrong book.

USD-M trades that are not ``X == "MARKET"`` (insurance fund, ADL) are dropped: they never reach
``@aggTrade``. USD-M ``markPrice`` frames are kept (replayed as recorded; spot has none). Trades
and markPrice frames recorded before the sync point are kept apart (``lead``; still counted in
``skipped``): an import of the same file keeps them, so a replay started at the node's snapshot
(``start="snapshot"``) sends them first and feeds the node what a backtest sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from training.data.book import BinanceBookSync
from training.data.csv import DataFileError
from training.data.csv import input_files
from training.data.sources.binance_ws import detect_market
from training.data.sources.binance_ws import iter_lines

__all__ = [
    "AGG_TRADE",
    "DEPTH",
    "MARK_PRICE",
    "TICKER",
    "TRADE",
    "Message",
    "Recording",
    "load_recording",
]

DEPTH, TRADE, AGG_TRADE, TICKER, MARK_PRICE = 0, 1, 2, 3, 4
_KIND = {
    "depth": DEPTH,
    "trade": TRADE,
    "aggTrade": AGG_TRADE,
    "bookTicker": TICKER,
    "markPrice": MARK_PRICE,
}
Market = Literal["spot", "usdm"]


@dataclass(frozen=True, slots=True)
class Message:
    """One recorded market message: receive time, kind (``DEPTH``...), its raw ``data`` JSON."""

    recv_ns: int
    kind: int
    data: bytes


@dataclass(frozen=True)
class Recording:
    """What the venue replays: the starting book and the messages from the sync point on."""

    market: Market
    symbol: str
    last_update_id: int
    bids: tuple[tuple[str, str], ...]
    asks: tuple[tuple[str, str], ...]
    messages: tuple[Message, ...]
    files: tuple[Path, ...]
    first_event_ms: int
    skipped: int
    lead: tuple[Message, ...] = ()

    @property
    def price_decimals(self) -> int:
        return _decimals((self.bids or self.asks)[0][0])

    @property
    def size_decimals(self) -> int:
        return _decimals((self.bids or self.asks)[0][1])

    @property
    def duration_s(self) -> float:
        return (self.messages[-1].recv_ns - self.messages[0].recv_ns) / 1e9

    def counts(self) -> dict[str, int]:
        names = {v: k for k, v in _KIND.items()}
        out = dict.fromkeys(_KIND, 0)
        for m in self.messages:
            out[names[m.kind]] += 1
        return out

    def busiest_minute(self) -> tuple[int, int]:
        """(messages, start recv_ns) of the 60 s window of receive time holding the most."""
        ts = [m.recv_ns for m in self.messages]
        best, start, j = 0, ts[0], 0
        for i, t in enumerate(ts):
            while t - ts[j] >= 60_000_000_000:
                j += 1
            if i - j + 1 > best:
                best, start = i - j + 1, ts[j]
        return best, start


def _decimals(text: str) -> int:
    return len(text) - text.index(".") - 1 if "." in text else 0


class _Env(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _Depth(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    pu: int | None = None


class _Stamp(msgspec.Struct):
    s: str
    E: int | None = None
    T: int | None = None
    X: str | None = None


class _Snapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


_DEC_ENV = msgspec.json.Decoder(_Env)
_DEC_DEPTH = msgspec.json.Decoder(_Depth)
_DEC_STAMP = msgspec.json.Decoder(_Stamp)
_DEC_SNAPSHOT = msgspec.json.Decoder(_Snapshot)


def _kind(stream: str) -> int | None:
    name = stream.split("@", 2)[1] if "@" in stream else ""
    return _KIND.get(name)


class _Loader:
    def __init__(self, market: Market) -> None:
        self.market = market
        self.sync = BinanceBookSync(market)
        self.symbol: str | None = None
        self.snapshot: _Snapshot | None = None
        self.items: list[Message] = []
        self.start: int | None = None  # index in items of the first applied diff
        self.pending: list[int] = []  # item indexes of diffs buffered before the snapshot
        self.skipped = 0
        self.first_ms: int | None = None

    def line(self, where: str, line: bytes) -> None:
        sp = line.find(b" ")
        if sp <= 0:
            if line.strip():
                raise ValueError("expected '<recv_ns> <json>'")
            return
        recv, rest = int(line[:sp]), line[sp + 1 :].strip()
        if rest.startswith(b'{"lastUpdateId"'):
            return self._snapshot(where, _DEC_SNAPSHOT.decode(rest))
        env = _DEC_ENV.decode(rest)
        kind = _kind(env.stream)
        if kind is None or (kind == MARK_PRICE and self.market != "usdm"):
            self.skipped += 1
            return
        raw = bytes(env.data)
        if kind == DEPTH:
            return self._depth(where, recv, raw)
        stamp = _DEC_STAMP.decode(raw)
        self._symbol(stamp.s)
        if kind == TRADE and stamp.X is not None and stamp.X != "MARKET":
            self.skipped += 1
            return
        self.items.append(Message(recv, kind, raw))

    def _symbol(self, symbol: str) -> None:
        if self.symbol is None:
            self.symbol = symbol
        elif symbol != self.symbol:
            raise ValueError(f"a second symbol {symbol!r} (the venue replays one: {self.symbol})")

    def _snapshot(self, where: str, snap: _Snapshot) -> None:
        if self.snapshot is not None:
            return  # the book is already synced; diffs carry it on
        self.snapshot = snap
        before = self.sync.applied
        self.sync.on_snapshot(snap.lastUpdateId, [], [], 0, 0)
        applied = self.sync.applied - before
        if self.sync.gaps:
            raise ValueError(f"{where}: the diffs after the snapshot do not continue it")
        if applied:
            self.start = self.pending[len(self.pending) - applied]
        self.pending.clear()

    def _depth(self, where: str, recv: int, raw: bytes) -> None:
        d = _DEC_DEPTH.decode(raw)
        self._symbol(d.s)
        before = self.sync.applied
        self.sync.on_depth(d.U, d.u, d.pu, [], [], 0, 0)
        if self.sync.gaps:
            raise ValueError(
                f"{where}: depth gap (U={d.U} u={d.u} pu={d.pu} after u={self.sync.last_u}); "
                "the venue needs a gap-free diff stream: split the recording here"
            )
        self.items.append(Message(recv, DEPTH, raw))
        if self.snapshot is None:
            self.pending.append(len(self.items) - 1)
        elif self.sync.applied > before and self.start is None:
            self.start = len(self.items) - 1
        elif self.sync.applied == before and self.start is not None:
            raise ValueError(f"{where}: depth diff u={d.u} not applied after the sync point")

    def recording(self, files: tuple[Path, ...]) -> Recording:
        where = f"{files[0]}"
        if self.snapshot is None:
            raise DataFileError(
                f"{where}: no REST depth snapshot line: pass the file that holds one first",
                path=files[0],
            )
        if self.start is None:
            raise DataFileError(f"{where}: no depth diff bridges the snapshot", path=files[0])
        first = self.items[self.start].recv_ns
        kept = [m for m in self.items[self.start :] if m.recv_ns >= first]
        lead = [
            m for m in self.items if m.recv_ns < first and m.kind in (TRADE, AGG_TRADE, MARK_PRICE)
        ]
        first_ms = _DEC_DEPTH.decode(kept[0].data).E
        assert self.symbol is not None
        snap = self.snapshot
        return Recording(
            market=self.market,
            symbol=self.symbol,
            last_update_id=snap.lastUpdateId,
            bids=tuple(tuple(x) for x in snap.bids),  # type: ignore[misc]
            asks=tuple(tuple(x) for x in snap.asks),  # type: ignore[misc]
            messages=tuple(kept),
            files=files,
            first_event_ms=first_ms,
            skipped=self.skipped + len(self.items) - len(kept),
            lead=tuple(lead),
        )


def load_recording(
    files: Sequence[str | Path], market: Literal["auto", "spot", "usdm"] = "auto"
) -> Recording:
    """Read ``files`` (one stream, in order) into a :class:`Recording` ready to replay."""
    paths = input_files(files)
    mkt: Market = detect_market(paths[0]) if market == "auto" else market
    loader = _Loader(mkt)
    for path in paths:
        lineno = 0
        try:
            for lineno, line in enumerate(iter_lines(path), 1):
                loader.line(f"{path}:{lineno}", line)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            msg = str(exc)
            prefix = "" if msg.startswith(f"{path}:") else f"{path}:{lineno}: "
            raise DataFileError(f"{prefix}{msg}", path=path, line=lineno) from exc
    return loader.recording(tuple(paths))
