"""The market catalog: a real Nautilus ``ParquetDataCatalog`` with one partition per symbol-day.

``MarketCatalog.write`` turns columnar :class:`~training.data.columns.MarketEvents` into Parquet
files in Nautilus's own layout and Arrow schema (``data/order_book_deltas/<instrument_id>/...``,
``trade_tick``, ``quote_tick``; prices/sizes as 128-bit fixed point, :mod:`training.data.fixed`),
so ``ParquetDataCatalog`` queries, ``BacktestNode`` and ``BacktestEngine`` read it. The record
batches are built directly from numpy (no Nautilus object per row, :mod:`training.data._arrow`),
which is what makes imports fast. ``MarketCatalog.write_data`` writes Nautilus objects (bars, and
a perpetual's ``FundingRateUpdate``s: one file per UTC day, :meth:`MarketCatalog.load_funding`).
Every write is staged beside the catalog and moved in all or nothing.

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
import shutil
import uuid
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from training.data._arrow import COLUMNS
from training.data._arrow import KINDS
from training.data._arrow import from_table
from training.data._arrow import to_table
from training.data._days import NS_PER_DAY
from training.data._days import book_state
from training.data._days import day_start_snapshot
from training.data._days import split_days
from training.data.columns import MarketEvents
from training.data.report import ImportReport
from training.data.report import ns_to_iso
from training.errors import BadInputError
from training.errors import NotFoundError
from training.io import atomic_write_json
from training.io import read_json

__all__ = [
    "FUNDING",
    "KINDS",
    "NS_PER_DAY",
    "VENUE",
    "MarketCatalog",
    "SymbolDay",
    "book_state",
    "day_start_snapshot",
    "split_days",
]

VENUE = "BINANCE"
#: Nautilus's directory for ``FundingRateUpdate`` (``data/funding_rate_update/<instrument_id>``).
FUNDING = "funding_rate_update"
_EPOCH = datetime.date(1970, 1, 1)


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


def _file_name(ts_init: np.ndarray) -> str:
    def stamp(ns: int) -> str:
        return str(ns_to_iso(ns)).replace(":", "-").replace(".", "-")

    return f"{stamp(int(ts_init[0]))}_{stamp(int(ts_init[-1]))}.parquet"


def _data_by_day(instrument: Instrument, data: Sequence[Data]) -> dict[int, list[Data]]:
    """Nautilus objects by UTC day of ``ts_event``, each day sorted by ``ts_init`` (stable)."""
    by_day: dict[int, list[Data]] = {}
    for obj in data:
        if isinstance(obj, FundingRateUpdate) and not isinstance(instrument, CryptoPerpetual):
            raise BadInputError(
                f"funding: {instrument.id} is not a perpetual; only perps carry funding",
                field="funding",
            )
        by_day.setdefault(obj.ts_event // NS_PER_DAY, []).append(obj)
    return {d: sorted(objs, key=lambda o: o.ts_init) for d, objs in sorted(by_day.items())}


def _stage_data(stage: ParquetDataCatalog, by_day: dict[int, list[Data]]) -> None:
    """One file per type and day, named by the day's bounds (what :meth:`funding_file` names)."""
    for day, objs in by_day.items():
        start = day * NS_PER_DAY
        for cls in dict.fromkeys(type(o) for o in objs):
            of_cls = [o for o in objs if type(o) is cls]
            stage.write_data(of_cls, start=start, end=start + NS_PER_DAY - 1)


def _symbol_days(inst_id: str, by_day: dict[int, list[Data]]) -> list[SymbolDay]:
    return sorted(SymbolDay(inst_id, _EPOCH + datetime.timedelta(days=d)) for d in by_day)


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
    def write(
        self, instrument: Instrument, events: MarketEvents, data: Sequence[Data] = ()
    ) -> list[SymbolDay]:
        """Write ``events`` of ``instrument``, one partition per UTC day, and Nautilus ``data``
        as :meth:`write_data` does, in one commit: all or nothing.

        Re-writing a symbol-day replaces it. Returns the symbol-days written, sorted.
        """
        for cols in (events.deltas, events.trades, events.quotes):
            cols.validate()
        data_days = _data_by_day(instrument, data)
        inst_id = instrument.id.value
        pp, sp = int(instrument.price_precision), int(instrument.size_precision)
        manifests: dict[SymbolDay, dict[str, object]] = {}
        with self._staged(instrument) as (staging, stage):
            _stage_data(stage, data_days)
            for day, ev in split_days(events).items():
                sd = SymbolDay(inst_id, _EPOCH + datetime.timedelta(days=day))
                files: dict[str, str] = {}
                counts: dict[str, int] = {}
                for kind, cols in zip(KINDS, (ev.deltas, ev.trades, ev.quotes), strict=True):
                    counts[kind] = len(cols)
                    if len(cols) == 0:
                        continue
                    rel = Path("data") / kind / inst_id / _file_name(cols.ts_init)
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    table = to_table(kind, cols, inst_id, pp, sp)
                    pq.write_table(table, staging / rel, row_group_size=100_000)
                    files[kind] = rel.as_posix()
                parts = [c.ts_event for c in (ev.deltas, ev.trades, ev.quotes) if len(c)]
                manifests[sd] = {
                    "instrument_id": inst_id,
                    "day": sd.day.isoformat(),
                    "files": files,
                    "counts": counts,
                    "first_ts_event": min(int(ts.min()) for ts in parts),
                    "last_ts_event": max(int(ts.max()) for ts in parts),
                }
            self._commit(staging, manifests)
        return sorted({*manifests, *_symbol_days(inst_id, data_days)})

    def write_data(self, instrument: Instrument, data: Sequence[Data]) -> list[SymbolDay]:
        """Write Nautilus objects (``Bar``s, a perpetual's ``FundingRateUpdate``s) with
        ``ParquetDataCatalog.write_data``, plus the instrument; all or nothing.

        One file per type and UTC day of ``ts_event``, named by that day's bounds, so re-writing
        a day replaces it. Returns the symbol-days touched, sorted; they get no partition manifest
        (:meth:`symbol_days` lists market-event partitions). Funding of an instrument that is not
        a perpetual is a :class:`~training.errors.BadInputError`.
        """
        if not data:
            return []
        by_day = _data_by_day(instrument, data)
        with self._staged(instrument) as (staging, stage):
            _stage_data(stage, by_day)
            self._commit(staging)
        return _symbol_days(instrument.id.value, by_day)

    @contextlib.contextmanager
    def _staged(self, instrument: Instrument) -> Iterator[tuple[Path, ParquetDataCatalog]]:
        """A fresh staging catalog under ``ROOT/.staging`` holding ``instrument``; removed after
        (what :meth:`_commit` did not move in is dropped)."""
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            stage = ParquetDataCatalog(str(staging))
            stage.write_data([instrument])
            yield staging, stage
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.root / ".staging").rmdir()

    def _commit(
        self, staging: Path, manifests: dict[SymbolDay, dict[str, object]] | None = None
    ) -> None:
        """Move every staged Parquet file to the same place under the root, then write
        ``manifests``; the symbol-days' old files and any file of the same name are replaced.
        On failure restore exactly what was there before."""
        manifests = manifests or {}
        staged = sorted(staging.rglob("*.parquet"))
        replaced: dict[Path, None] = {}  # ordered set
        for sd in manifests:
            m = self._manifest(sd)
            if m.exists():
                old_files = read_json(m).get("files", {}).values()
                replaced.update(dict.fromkeys(self.root / f for f in old_files))
                replaced[m] = None
        replaced.update(dict.fromkeys(self.root / p.relative_to(staging) for p in staged))
        backup = staging / ".backup"
        moved_in: list[Path] = []
        moved_out: list[tuple[Path, Path]] = []
        try:
            for i, f in enumerate(replaced):
                if f.exists():
                    keep = backup / str(i)
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    f.replace(keep)
                    moved_out.append((f, keep))
            for p in staged:
                target = self.root / p.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                p.replace(target)
                moved_in.append(target)
            for sd, entry in manifests.items():
                moved_in.append(atomic_write_json(self._manifest(sd), entry))
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
        return read_json(m)

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
        parts = [
            from_table(kind, pq.read_table(self.root / files[kind]))
            if kind in files
            else COLUMNS[kind].empty()
            for kind in KINDS
        ]
        return MarketEvents(*parts)  # type: ignore[arg-type]

    def funding_file(self, symbol_day: SymbolDay) -> Path:
        """Where a perpetual's ``FundingRateUpdate``s of one UTC day live (may not exist)."""
        start = (symbol_day.day - _EPOCH).days * NS_PER_DAY
        bounds = np.array([start, start + NS_PER_DAY - 1])
        return self.root / "data" / FUNDING / symbol_day.instrument_id / _file_name(bounds)

    def load_funding(self, symbol: str, day: datetime.date) -> list[FundingRateUpdate]:
        """The funding updates of one symbol-day (``ts_event`` in that UTC day) in delivery
        order (``ts_init``), as Nautilus objects a ``BacktestEngine`` replays; ``[]`` when the
        catalog holds none (spot, or no funding source imported)."""
        try:
            inst_id = self._resolve(symbol)
        except NotFoundError:  # funding imported without market data
            inst_id = self._resolve(symbol, {i.id.value for i in self.nautilus.instruments()})
        path = self.funding_file(SymbolDay(inst_id, day))
        if not path.exists():
            return []
        return self.nautilus.query(FundingRateUpdate, files=[str(path)])  # type: ignore[return-value]

    def funding_of(self, symbol_days: Iterable[SymbolDay]) -> list[FundingRateUpdate]:
        """The funding updates of several symbol-days, day after day (what a cost model
        settles funding from: :meth:`training.costs.CostModel.with_funding`)."""
        return [u for sd in symbol_days for u in self.load_funding(sd.instrument_id, sd.day)]
