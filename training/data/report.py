"""The import report: what one ``nhmm data ...`` run put into the catalog, as sorted-key JSON.

Every importer fills one :class:`ImportReport`, tallying each instrument it wrote with
:meth:`ImportReport.add`, and writes it with ``MarketCatalog.write_report(name, report)`` to
``CATALOG/reports/<name>.json``. Timestamps are UNIX ns; the JSON also carries ISO-8601 strings
beside them.

>>> from training.data.columns import DeltaColumns, MarketEvents, QuoteColumns, TradeColumns
>>> trades = TradeColumns.from_rows([(1_723_161_600_000_000_000, 0, 1.5, 2.0, 1, 7)])
>>> r = ImportReport(name="demo")
>>> r.add("BTCUSDT.BINANCE", MarketEvents(DeltaColumns.empty(), trades, QuoteColumns.empty()),
...       ["BTCUSDT.BINANCE/2024-08-09"], widened={"size_precision": [5, 6]})
>>> d = r.to_dict()
>>> d["first_ts_event_iso"], d["events"], d["trades"], d["extra"]["precision_widened"]
('2024-08-09T00:00:00.000000000Z', 1, 1, {'BTCUSDT.BINANCE': {'size_precision': [5, 6]}})
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from training.data.columns import MarketEvents
from training.io import atomic_write_text

__all__ = ["ImportReport", "ns_to_iso"]


def ns_to_iso(ns: int | None) -> str | None:
    """UNIX nanoseconds as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (UTC), ``None`` passes through."""
    if ns is None:
        return None
    secs, frac = divmod(int(ns), 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


@dataclass
class ImportReport:
    """Counts and time range of one import; ``extra`` holds source-specific numbers."""

    name: str
    sources: list[str] = field(default_factory=list)
    instrument_ids: list[str] = field(default_factory=list)
    events: int = 0
    deltas: int = 0
    trades: int = 0
    quotes: int = 0
    gaps: int = 0
    resyncs: int = 0
    bbo_checks: int = 0
    bbo_mismatches: int = 0
    first_ts_event: int | None = None
    last_ts_event: int | None = None
    symbol_days: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    events_per_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add_ts(self, ts_event: int) -> None:
        """Widen ``first_ts_event``/``last_ts_event`` to include ``ts_event``."""
        ts = int(ts_event)
        if self.first_ts_event is None or ts < self.first_ts_event:
            self.first_ts_event = ts
        if self.last_ts_event is None or ts > self.last_ts_event:
            self.last_ts_event = ts

    def add(
        self,
        instrument_id: str,
        events: MarketEvents,
        symbol_days: Iterable[object] = (),
        *,
        widened: dict[str, list[int]] | None = None,
    ) -> None:
        """Tally one instrument's ``events``, written as ``symbol_days`` (``SymbolDay`` or str).

        Counts and the time range grow; instrument ids and symbol-days stay sorted and unique;
        a precision the import had to widen (:func:`training.data.instruments.fit_precision`)
        is recorded under ``extra["precision_widened"][instrument_id]``.
        """
        self.instrument_ids = sorted({*self.instrument_ids, instrument_id})
        days = {*self.symbol_days, *map(str, symbol_days)}
        self.symbol_days = sorted(days, key=lambda sd: sd.rsplit("/", 1))
        self.deltas += len(events.deltas)
        self.trades += len(events.trades)
        self.quotes += len(events.quotes)
        self.events += len(events)
        for cols in (events.deltas, events.trades, events.quotes):
            if len(cols):
                self.add_ts(int(cols.ts_event.min()))
                self.add_ts(int(cols.ts_event.max()))
        if widened:
            self.extra.setdefault("precision_widened", {})[instrument_id] = dict(widened)

    def finish(self, wall_time_s: float) -> None:
        """Record the wall time and derive ``events_per_s``."""
        self.wall_time_s = float(wall_time_s)
        self.events_per_s = self.events / wall_time_s if wall_time_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, with ``*_iso`` strings beside the ns timestamps."""
        d = asdict(self)
        d["first_ts_event_iso"] = ns_to_iso(self.first_ts_event)
        d["last_ts_event_iso"] = ns_to_iso(self.last_ts_event)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (:func:`training.io.atomic_write_text`); returns the path."""
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImportReport:
        """Inverse of :meth:`to_dict` (ignores the ``*_iso`` strings)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})
