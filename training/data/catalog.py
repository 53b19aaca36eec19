"""The market catalog: a real Nautilus ``ParquetDataCatalog`` with one partition per symbol-day.

``MarketCatalog.write`` turns columnar :class:`~training.data.columns.MarketEvents` into Parquet
files in Nautilus's own layout and Arrow schema (``data/order_book_deltas/<instrument_id>/...``,
``trade_tick``, ``quote_tick``; prices/sizes as 128-bit fixed point, ``FIXED_PRECISION`` 16), so
``ParquetDataCatalog`` queries, ``BacktestNode`` and ``BacktestEngine`` read it. The record
batches are built directly from numpy (no Nautilus object per row), which is what makes imports fast.

Layout under ``root``::

    data/...                                   Nautilus data + instruments (its own layout)
    partitions/<instrument_id>/<YYYY-MM-DD>.json   which files hold that symbol-day
    reports/<name>.json                        import reports
    labels/<instrument_id>/<YYYY-MM-DD>.parquet    ground-truth regimes (synthetic market)

``load`` decodes prices exactly as Nautilus's ``Price.as_double()`` does (``raw / 1e16``), so
``61837.64`` reads back as ``61837.63999999999``: the same float the strategy sees in a backtest.

Day-start snapshots live here (not in each importer): when a write spans UTC midnight, the book
reconstructed from the deltas themselves is emitted at the start of the new day as CLEAR + full
snapshot (``F_SNAPSHOT``, ``F_LAST`` on its last delta), so every symbol-day replays on its own.
Importers must therefore emit a CLEAR when their book stops being trustworthy (a sequence gap);
an empty reconstructed book at midnight produces no snapshot.

>>> import tempfile
>>> from nautilus_trader.test_kit.providers import TestInstrumentProvider
>>> from training.data.columns import (
...     ADD, BUY, CLEAR, F_LAST, F_SNAPSHOT, SELL, DeltaColumns, MarketEvents, QuoteColumns,
...     TradeColumns)
>>> ts = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z
>>> deltas = DeltaColumns.from_rows([
...     (ts, ts, CLEAR, 0, 0.0, 0.0, F_SNAPSHOT, 1),
...     (ts, ts, ADD, BUY, 61837.63, 1.5, F_SNAPSHOT, 1),
...     (ts, ts, ADD, SELL, 61837.64, 0.25, F_SNAPSHOT | F_LAST, 1)])
>>> ev = MarketEvents(deltas, TradeColumns.empty(), QuoteColumns.empty())
>>> cat = MarketCatalog(tempfile.mkdtemp())
>>> cat.write(TestInstrumentProvider.btcusdt_binance(), ev)
[SymbolDay(instrument_id='BTCUSDT.BINANCE', day=datetime.date(2024, 8, 9))]
>>> back = cat.load("BTCUSDT", datetime.date(2024, 8, 9))
>>> back.deltas.price.tolist(), len(cat.nautilus.order_book_deltas())
([0.0, 61837.63, 61837.63999999999], 3)
"""

from __future__ import annotations

import contextlib
import datetime
import json
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from training.data.columns import (
    ADD,
    BUY,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    SELL,
    DeltaColumns,
    MarketEvents,
    QuoteColumns,
    TradeColumns,
)
from training.data.report import ImportReport, ns_to_iso
from training.errors import BadInputError, NotFoundError

FIXED_PRECISION = 16
NS_PER_DAY = 86_400 * 1_000_000_000
VENUE = "BINANCE"
KINDS = ("order_book_deltas", "trade_tick", "quote_tick")
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True, order=True)
class SymbolDay:
    """One partition: an instrument and a UTC day of ``ts_event``."""

    instrument_id: str
    day: datetime.date

    @property
    def symbol(self) -> str:
        """``BTCUSDT`` / ``BTCUSDT-PERP``: the instrument id without its venue."""
        return self.instrument_id.rsplit(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.instrument_id}/{self.day.isoformat()}"


# -- 128-bit fixed point ---------------------------------------------------------------------


def _mul_u64(a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact 64x64 -> 128-bit unsigned product as (lo, hi) uint64 words."""
    b = np.uint64(b)
    a_lo, a_hi = a & _MASK32, a >> np.uint64(32)
    b_lo, b_hi = b & _MASK32, b >> np.uint64(32)
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (p0 >> np.uint64(32)) + (p1 & _MASK32) + (p2 & _MASK32)
    lo = (p0 & _MASK32) | (mid << np.uint64(32))
    hi = p3 + (p1 >> np.uint64(32)) + (p2 >> np.uint64(32)) + (mid >> np.uint64(32))
    return lo, hi


def fixed_raw(values: np.ndarray, precision: int, name: str = "value") -> np.ndarray:
    """Nautilus raw int128 (``round(v * 10**precision) * 10**(16 - precision)``) as (n, 2) uint64.

    Rounds half away from zero like Nautilus's ``f64_to_fixed_i128``; columns are (lo, hi)
    little-endian words, i.e. exactly the bytes of a ``fixed_size_binary[16]`` cell.
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: non-finite value")
    scaled = v * (10.0**precision)
    n = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    off = np.abs(scaled - n) > 1e-3 + 1e-12 * np.abs(scaled)
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"{name}[{i}] = {v[i]!r} is not a multiple of 1e-{precision} (instrument precision)"
        )
    if np.abs(n).max(initial=0.0) >= 2.0**63:
        raise ValueError(f"{name}: value out of range for precision {precision}")
    ni = n.astype(np.int64)
    neg = ni < 0
    lo, hi = _mul_u64(np.abs(ni).astype(np.uint64), 10 ** (FIXED_PRECISION - precision))
    if neg.any():
        nlo, nhi = ~lo + np.uint64(1), ~hi
        nhi = nhi + (nlo == 0).astype(np.uint64)
        lo, hi = np.where(neg, nlo, lo), np.where(neg, nhi, hi)
    return np.stack([lo, hi], axis=1)


def precision_needed(values: np.ndarray, minimum: int = 0, maximum: int = 9) -> int:
    """Smallest precision >= ``minimum`` that holds every value exactly (grid of 10**-p).

    Binance books can carry sizes finer than today's ``stepSize`` (orders resting since an
    older, finer step); importers raise the instrument's precision to this instead of rounding.

    >>> precision_needed(np.array([1.5, 25.426189]), minimum=5)
    6
    """
    v = np.asarray(values, dtype=np.float64)
    for p in range(minimum, maximum + 1):
        scaled = v * (10.0**p)
        if not (np.abs(scaled - np.round(scaled)) > 1e-3 + 1e-12 * np.abs(scaled)).any():
            return p
    raise ValueError(f"values need more than {maximum} decimals")


def encode_fixed(
    values: np.ndarray, precision: int, name: str = "value"
) -> pa.FixedSizeBinaryArray:
    """Float values as Nautilus 128-bit fixed-point ``fixed_size_binary[16]``.

    Raises ``ValueError`` naming ``name`` when a value is off the ``10**-precision`` grid
    (rounding it would silently change the data).
    """
    words = np.ascontiguousarray(fixed_raw(values, precision, name))
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(words), [None, pa.py_buffer(words.tobytes())]
    )


def _bit_length(h: np.ndarray) -> np.ndarray:
    """Bit length of positive uint64 values below 2**63."""
    e = np.frexp(h.astype(np.float64))[1].astype(np.int64)
    too_big = (h >> (e - 1).astype(np.uint64)) == 0
    return e - too_big


def decode_fixed(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``fixed_size_binary[16]`` raw int128 -> float64, bit-identical to ``Price.as_double()``.

    Nautilus computes ``(double)raw / 1e16`` with a correctly rounded int128 -> double
    conversion; we reproduce it with a sticky-bit shift into 64 bits.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    buf = arr.buffers()[1]
    words = np.frombuffer(buf, dtype=np.uint64, count=2 * n, offset=arr.offset * 16).reshape(n, 2)
    lo, hi = words[:, 0].copy(), words[:, 1].copy()
    neg = (hi >> np.uint64(63)) == 1
    if neg.any():
        nlo = ~lo + np.uint64(1)
        nhi = ~hi + (nlo == 0).astype(np.uint64)
        lo, hi = np.where(neg, nlo, lo), np.where(neg, nhi, hi)
    out = lo.astype(np.float64)
    big = hi != 0
    if big.any():
        h, low = hi[big], lo[big]
        s = _bit_length(h).astype(np.uint64)
        x = (h << (np.uint64(64) - s)) | (low >> s)
        sticky = (low & ((np.uint64(1) << s) - np.uint64(1))) != 0
        x |= sticky.astype(np.uint64)
        out[big] = np.ldexp(x.astype(np.float64), s.astype(np.int64))
    out /= 1e16
    return np.where(neg, -out, out)


# -- Arrow tables in Nautilus's schema -------------------------------------------------------

_FIXED = pa.binary(16)
_SCHEMAS = {
    "order_book_deltas": pa.schema(
        [
            pa.field("action", pa.uint8(), nullable=False),
            pa.field("side", pa.uint8(), nullable=False),
            pa.field("price", _FIXED, nullable=False),
            pa.field("size", _FIXED, nullable=False),
            pa.field("order_id", pa.uint64(), nullable=False),
            pa.field("flags", pa.uint8(), nullable=False),
            pa.field("sequence", pa.uint64(), nullable=False),
            pa.field("ts_event", pa.uint64(), nullable=False),
            pa.field("ts_init", pa.uint64(), nullable=False),
        ]
    ),
    "trade_tick": pa.schema(
        [
            pa.field("price", _FIXED, nullable=False),
            pa.field("size", _FIXED, nullable=False),
            pa.field("aggressor_side", pa.uint8(), nullable=False),
            pa.field("trade_id", pa.string(), nullable=False),
            pa.field("ts_event", pa.uint64(), nullable=False),
            pa.field("ts_init", pa.uint64(), nullable=False),
        ]
    ),
    "quote_tick": pa.schema(
        [
            pa.field("bid_price", _FIXED, nullable=False),
            pa.field("ask_price", _FIXED, nullable=False),
            pa.field("bid_size", _FIXED, nullable=False),
            pa.field("ask_size", _FIXED, nullable=False),
            pa.field("ts_event", pa.uint64(), nullable=False),
            pa.field("ts_init", pa.uint64(), nullable=False),
        ]
    ),
}


def _u64(a: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(a).astype(np.uint64, copy=False), type=pa.uint64())


def _u8(a: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(a).astype(np.uint8, copy=False), type=pa.uint8())


def _table(kind: str, cols: object, instrument_id: str, pp: int, sp: int) -> pa.Table:
    meta = {
        "instrument_id": instrument_id,
        "price_precision": str(pp),
        "size_precision": str(sp),
    }
    schema = _SCHEMAS[kind].with_metadata(meta)
    if kind == "order_book_deltas":
        d: DeltaColumns = cols  # type: ignore[assignment]
        arrays = [
            _u8(d.action),
            _u8(d.side),
            encode_fixed(d.price, pp, "order_book_deltas.price"),
            encode_fixed(d.size, sp, "order_book_deltas.size"),
            _u64(np.zeros(len(d), dtype=np.uint64)),
            _u8(d.flags),
            _u64(d.sequence),
            _u64(d.ts_event),
            _u64(d.ts_init),
        ]
    elif kind == "trade_tick":
        t: TradeColumns = cols  # type: ignore[assignment]
        arrays = [
            encode_fixed(t.price, pp, "trade_tick.price"),
            encode_fixed(t.size, sp, "trade_tick.size"),
            _u8(t.aggressor),
            pc.cast(pa.array(t.trade_id, type=pa.int64()), pa.string()),
            _u64(t.ts_event),
            _u64(t.ts_init),
        ]
    else:
        q: QuoteColumns = cols  # type: ignore[assignment]
        arrays = [
            encode_fixed(q.bid_price, pp, "quote_tick.bid_price"),
            encode_fixed(q.ask_price, pp, "quote_tick.ask_price"),
            encode_fixed(q.bid_size, sp, "quote_tick.bid_size"),
            encode_fixed(q.ask_size, sp, "quote_tick.ask_size"),
            _u64(q.ts_event),
            _u64(q.ts_init),
        ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _columns_from_table(kind: str, table: pa.Table) -> DeltaColumns | TradeColumns | QuoteColumns:
    def i64(name: str) -> np.ndarray:
        return table.column(name).to_numpy().astype(np.int64)

    if kind == "order_book_deltas":
        return DeltaColumns(
            ts_event=i64("ts_event"),
            ts_init=i64("ts_init"),
            action=table.column("action").to_numpy().astype(np.uint8),
            side=table.column("side").to_numpy().astype(np.uint8),
            price=decode_fixed(table.column("price")),
            size=decode_fixed(table.column("size")),
            flags=table.column("flags").to_numpy().astype(np.uint8),
            sequence=table.column("sequence").to_numpy().astype(np.uint64),
        )
    if kind == "trade_tick":
        try:
            trade_id = pc.cast(table.column("trade_id"), pa.int64()).to_numpy()
        except pa.ArrowInvalid as exc:
            raise ValueError(f"trade_tick.trade_id: not an integer id ({exc})") from exc
        return TradeColumns(
            ts_event=i64("ts_event"),
            ts_init=i64("ts_init"),
            price=decode_fixed(table.column("price")),
            size=decode_fixed(table.column("size")),
            aggressor=table.column("aggressor_side").to_numpy().astype(np.uint8),
            trade_id=np.asarray(trade_id, dtype=np.int64),
        )
    return QuoteColumns(
        ts_event=i64("ts_event"),
        ts_init=i64("ts_init"),
        bid_price=decode_fixed(table.column("bid_price")),
        bid_size=decode_fixed(table.column("bid_size")),
        ask_price=decode_fixed(table.column("ask_price")),
        ask_size=decode_fixed(table.column("ask_size")),
    )


# -- day splitting and day-start snapshots ---------------------------------------------------


def book_state(deltas: DeltaColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2 book (side, price, size) after applying ``deltas``, vectorised.

    Starts from the last CLEAR (an empty book before it); for each (side, price) the last
    delta wins; DELETE or size 0 removes the level. Sorted bids high->low then asks low->high.
    """
    clears = np.flatnonzero(deltas.action == CLEAR)
    start = int(clears[-1]) + 1 if len(clears) else 0
    act = deltas.action[start:]
    side, price, size = deltas.side[start:], deltas.price[start:], deltas.size[start:]
    if len(act) == 0:
        empty = np.empty(0)
        return empty.astype(np.uint8), empty, empty
    order = np.lexsort((np.arange(len(act)), price, side))  # by level, then time
    s_o, p_o = side[order], price[order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = (s_o[1:] != s_o[:-1]) | (p_o[1:] != p_o[:-1])
    last = order[is_last]
    keep = last[(act[last] != DELETE) & (size[last] > 0)]
    s, p, q = side[keep], price[keep], size[keep]
    order = np.lexsort((np.where(s == BUY, -p, p), s))
    return s[order].astype(np.uint8), p[order], q[order]


def day_start_snapshot(book_before: DeltaColumns, ts_event: int, ts_init: int) -> DeltaColumns:
    """CLEAR + full snapshot of the book ``book_before`` leaves; empty if that book is empty."""
    side, price, size = book_state(book_before)
    if len(side) == 0:
        return DeltaColumns.empty()
    seq = int(book_before.sequence[-1]) if len(book_before) else 0
    n = len(side) + 1
    flags = np.full(n, F_SNAPSHOT, dtype=np.uint8)
    flags[-1] |= F_LAST
    return DeltaColumns(
        ts_event=np.full(n, ts_event, dtype=np.int64),
        ts_init=np.full(n, ts_init, dtype=np.int64),
        action=np.concatenate([[CLEAR], np.full(n - 1, ADD)]).astype(np.uint8),
        side=np.concatenate([[0], side]).astype(np.uint8),
        price=np.concatenate([[0.0], price]),
        size=np.concatenate([[0.0], size]),
        flags=flags,
        sequence=np.full(n, seq, dtype=np.uint64),
    )


def _day_index(ts_event: np.ndarray) -> np.ndarray:
    return np.asarray(ts_event, dtype=np.int64) // NS_PER_DAY


def _sorted_by_ts_init(cols: DeltaColumns | TradeColumns | QuoteColumns) -> object:
    if len(cols) < 2 or (np.diff(cols.ts_init) >= 0).all():
        return cols
    return cols.take(np.argsort(cols.ts_init, kind="stable"))


def split_days(events: MarketEvents) -> dict[int, MarketEvents]:
    """Split by UTC day of ``ts_event``; each day after the first opens with a book snapshot."""
    d, t, q = events.deltas, events.trades, events.quotes
    days_d, days_t, days_q = _day_index(d.ts_event), _day_index(t.ts_event), _day_index(q.ts_event)
    all_days = sorted(set(days_d.tolist()) | set(days_t.tolist()) | set(days_q.tolist()))
    out: dict[int, MarketEvents] = {}
    for day in all_days:
        dmask = days_d == day
        day_deltas = d.take(dmask)
        idx = np.flatnonzero(dmask)
        if len(idx) and idx[0] > 0 and day_deltas.action[0] != CLEAR:
            firsts = [int(day_deltas.ts_event[0])]
            firsts += [
                int(c.ts_event[m][0])
                for c, m in ((t, days_t == day), (q, days_q == day))
                if m.any()
            ]
            snap = day_start_snapshot(
                d.take(slice(0, int(idx[0]))), min(firsts), int(day_deltas.ts_init[0])
            )
            day_deltas = DeltaColumns.concat([snap, day_deltas])
        out[day] = MarketEvents(
            deltas=_sorted_by_ts_init(day_deltas),  # type: ignore[arg-type]
            trades=_sorted_by_ts_init(t.take(days_t == day)),  # type: ignore[arg-type]
            quotes=_sorted_by_ts_init(q.take(days_q == day)),  # type: ignore[arg-type]
        )
    return out


def _file_name(ts_init: np.ndarray) -> str:
    def stamp(ns: int) -> str:
        return str(ns_to_iso(ns)).replace(":", "-").replace(".", "-")

    return f"{stamp(int(ts_init[0]))}_{stamp(int(ts_init[-1]))}.parquet"


# -- the catalog -----------------------------------------------------------------------------


class MarketCatalog:
    """A Nautilus ``ParquetDataCatalog`` plus a symbol-day index, fast columnar reads and reports."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.nautilus = ParquetDataCatalog(str(self.root))

    # paths
    def _manifest(self, sd: SymbolDay) -> Path:
        return self.root / "partitions" / sd.instrument_id / f"{sd.day.isoformat()}.json"

    def labels_path(self, symbol_day: SymbolDay) -> Path:
        """Where the synthetic market writes a symbol-day's ground-truth regimes."""
        return (
            self.root
            / "labels"
            / symbol_day.instrument_id
            / f"{symbol_day.day.isoformat()}.parquet"
        )

    def write_report(self, name: str, report: ImportReport) -> Path:
        """``CATALOG/reports/<name>.json`` (sorted keys); returns the path."""
        return report.write(self.root / "reports" / f"{name}.json")

    # writing
    def write(self, instrument: Instrument, events: MarketEvents) -> list[SymbolDay]:
        """Write ``events`` of ``instrument``, one partition per UTC day; all or nothing.

        Re-writing a symbol-day replaces it. Returns the symbol-days written, sorted.
        """
        for cols in (events.deltas, events.trades, events.quotes):
            cols.validate()
        inst_id = instrument.id.value
        pp, sp = int(instrument.price_precision), int(instrument.size_precision)
        staging = self.root / ".staging" / uuid.uuid4().hex
        written: list[SymbolDay] = []
        try:
            stage_cat = ParquetDataCatalog(str(staging))
            stage_cat.write_data([instrument])
            plans: list[tuple[SymbolDay, dict[str, object]]] = []
            for day, ev in split_days(events).items():
                sd = SymbolDay(inst_id, datetime.date(1970, 1, 1) + datetime.timedelta(days=day))
                entry: dict[str, object] = {"instrument_id": inst_id, "day": sd.day.isoformat()}
                files: dict[str, str] = {}
                counts: dict[str, int] = {}
                for kind, cols in zip(KINDS, (ev.deltas, ev.trades, ev.quotes), strict=True):
                    counts[kind] = len(cols)
                    if len(cols) == 0:
                        continue
                    rel = Path("data") / kind / inst_id / _file_name(cols.ts_init)
                    path = staging / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    pq.write_table(
                        _table(kind, cols, inst_id, pp, sp), path, row_group_size=100_000
                    )
                    files[kind] = rel.as_posix()
                ts = [int(c.ts_event.min()) for c in (ev.deltas, ev.trades, ev.quotes) if len(c)]
                te = [int(c.ts_event.max()) for c in (ev.deltas, ev.trades, ev.quotes) if len(c)]
                entry.update(
                    files=files, counts=counts, first_ts_event=min(ts), last_ts_event=max(te)
                )
                plans.append((sd, entry))
            self._commit(staging, inst_id, plans)
            written = sorted(sd for sd, _ in plans)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.root / ".staging").rmdir()
        return written

    def _commit(
        self, staging: Path, inst_id: str, plans: list[tuple[SymbolDay, dict[str, object]]]
    ) -> None:
        """Move staged files into place; on failure restore exactly what was there before."""
        backup = staging / ".backup"
        moved_in: list[Path] = []
        moved_out: list[tuple[Path, Path]] = []
        try:
            old_files: list[Path] = []
            for sd, _ in plans:
                m = self._manifest(sd)
                if m.exists():
                    old = json.loads(m.read_text())
                    old_files += [self.root / f for f in old.get("files", {}).values()]
                    old_files.append(m)
            inst_dir = staging / "data"
            inst_files = [
                p for p in inst_dir.rglob("*.parquet") if p.parent.parent.name not in KINDS
            ]
            for p in inst_files:
                target = self.root / p.relative_to(staging)
                if target.exists():
                    old_files.append(target)
            for i, f in enumerate(old_files):
                if f.exists():
                    keep = backup / str(i)
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    f.replace(keep)
                    moved_out.append((f, keep))
            for p in sorted(staging.rglob("*.parquet")):
                if backup in p.parents:
                    continue
                target = self.root / p.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                p.replace(target)
                moved_in.append(target)
            for sd, entry in plans:
                m = self._manifest(sd)
                m.parent.mkdir(parents=True, exist_ok=True)
                tmp = m.with_name(f".{m.name}.tmp")
                tmp.write_text(json.dumps(entry, sort_keys=True, indent=2) + "\n")
                tmp.replace(m)
                moved_in.append(m)
        except BaseException:
            for p in moved_in:
                p.unlink(missing_ok=True)
            for orig, keep in moved_out:
                orig.parent.mkdir(parents=True, exist_ok=True)
                keep.replace(orig)
            raise

    # reading
    def symbol_days(self, symbol: str | None = None) -> list[SymbolDay]:
        """All partitions (sorted), optionally only those of one symbol/instrument id."""
        base = self.root / "partitions"
        if not base.exists():
            return []
        out = []
        for m in base.glob("*/*.json"):
            out.append(SymbolDay(m.parent.name, datetime.date.fromisoformat(m.stem)))
        if symbol is not None:
            inst_id = self._resolve(symbol, {sd.instrument_id for sd in out})
            out = [sd for sd in out if sd.instrument_id == inst_id]
        return sorted(out)

    def instrument_ids(self) -> list[str]:
        base = self.root / "partitions"
        return sorted(p.name for p in base.iterdir()) if base.exists() else []

    def _resolve(self, symbol: str, known: set[str] | None = None) -> str:
        """Instrument id for ``BTCUSDT`` / ``BTCUSDT.BINANCE`` / ``BTCUSDT-PERP`` / ...

        A bare ``BTCUSDT`` also names ``BTCUSDT-PERP.BINANCE`` when that is the only match.
        """
        known = set(self.instrument_ids()) if known is None else known
        if symbol in known:
            return symbol
        for same in (
            lambda i: i.rsplit(".", 1)[0] == symbol,
            lambda i: i.rsplit(".", 1)[0].removesuffix("-PERP") == symbol,
        ):
            matches = sorted(i for i in known if same(i))
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise BadInputError(
                    f"symbol {symbol!r} is ambiguous in {self.root}: {matches}", field="symbol"
                )
        raise NotFoundError(
            f"symbol {symbol!r} is not in catalog {self.root} (has: {sorted(known)})",
            field="symbol",
        )

    def select(
        self,
        symbols: str | Sequence[str] | None = None,
        days: Iterable[datetime.date] | None = None,
    ) -> list[SymbolDay]:
        """The symbol-days of ``symbols`` (default: all) on ``days`` (default: all), by day.

        Each symbol takes any spelling :meth:`instrument` accepts. Raises
        :class:`~training.errors.NotFoundError` naming the symbol with no partitions or the
        days none of the chosen symbols has.
        """
        if isinstance(symbols, str):
            symbols = [symbols]
        every = self.symbol_days()
        if not every:
            raise NotFoundError(f"catalog {self.root} holds no partitions", field="catalog")
        chosen = every
        if symbols:
            known = {sd.instrument_id for sd in every}
            ids = {self._resolve(s, known) for s in symbols}
            chosen = [sd for sd in every if sd.instrument_id in ids]
        if days is not None:
            wanted = set(days)
            missing = sorted(wanted - {sd.day for sd in chosen})
            if missing:
                names = ", ".join(sorted({sd.symbol for sd in chosen}))
                listed = ", ".join(d.isoformat() for d in missing)
                raise NotFoundError(f"no data for {names} on {listed} in {self.root}", field="days")
            chosen = [sd for sd in chosen if sd.day in wanted]
        return sorted(chosen, key=lambda sd: (sd.day, sd.instrument_id))

    def instrument(self, symbol: str) -> Instrument:
        """The Nautilus instrument stored for ``symbol`` (any of the accepted spellings)."""
        try:
            inst_id = self._resolve(symbol)
        except NotFoundError:  # an instrument written without market data (e.g. for bars)
            inst_id = self._resolve(symbol, {i.id.value for i in self.nautilus.instruments()})
        found = self.nautilus.instruments(instrument_ids=[inst_id])
        if not found:
            raise NotFoundError(
                f"instrument {inst_id} has data but no instrument in {self.root}", field="symbol"
            )
        return found[0]

    def partition(self, symbol_day: SymbolDay) -> dict[str, object]:
        """The manifest of one symbol-day (files, counts, ts_event range)."""
        m = self._manifest(symbol_day)
        if not m.exists():
            raise NotFoundError(f"no partition {symbol_day} in {self.root}", field="days")
        return json.loads(m.read_text())

    def files(self, symbol_day: SymbolDay) -> dict[str, Path]:
        """Absolute Parquet paths of one symbol-day by kind (``order_book_deltas``, ...).

        Nautilus filters queries on ``ts_init`` (receive time), so a day's opening snapshot can
        sit before midnight; pass these to ``ParquetDataCatalog.query(..., files=[...])`` to read
        exactly one symbol-day through Nautilus.
        """
        files: dict[str, str] = self.partition(symbol_day)["files"]  # type: ignore[assignment]
        return {kind: self.root / rel for kind, rel in files.items()}

    def load(self, symbol: str, day: datetime.date) -> MarketEvents:
        """One symbol-day as columns, read with pyarrow (values equal ``as_double()``)."""
        entry = self.partition(SymbolDay(self._resolve(symbol), day))
        files: dict[str, str] = entry["files"]  # type: ignore[assignment]
        parts = []
        for kind, empty in zip(
            KINDS, (DeltaColumns.empty, TradeColumns.empty, QuoteColumns.empty), strict=True
        ):
            if kind in files:
                parts.append(_columns_from_table(kind, pq.read_table(self.root / files[kind])))
            else:
                parts.append(empty())
        return MarketEvents(*parts)  # type: ignore[arg-type]


__all__ = [
    "ADD",
    "BUY",
    "SELL",
    "VENUE",
    "MarketCatalog",
    "SymbolDay",
    "book_state",
    "decode_fixed",
    "encode_fixed",
    "precision_needed",
    "split_days",
]
