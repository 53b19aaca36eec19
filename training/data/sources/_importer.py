"""The write half every importer shares: catalog writes, report tallying, the report file.

Importers parse everything first (a bad row aborts before anything is written), then open an
:class:`ImportWriter` (which creates the catalog only now, so a bad file or symbol leaves no
catalog behind), :meth:`~ImportWriter.write` each fitted instrument, and
:meth:`~ImportWriter.close` to time the report and write it to ``CATALOG/reports/<name>.json``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from nautilus_trader.core.data import Data
from nautilus_trader.model.instruments import Instrument

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.columns import MarketEvents
from training.data.report import ImportReport

__all__ = ["ImportWriter", "new_report"]


def new_report(name: str | None, command: str, paths: Sequence[Path]) -> ImportReport:
    """A report named ``name`` (default ``<command>-<first file's stem>``) listing ``paths``."""
    default = f"{command}-{paths[0].name.split('.')[0]}"
    return ImportReport(name=name or default, sources=[str(p) for p in paths])


class ImportWriter:
    """Writes fitted instruments into the catalog at ``out`` and tallies them in ``report``."""

    def __init__(self, out: str | Path, report: ImportReport) -> None:
        self.catalog = MarketCatalog(out)
        self.report = report

    def write(
        self,
        instrument: Instrument,
        events: MarketEvents,
        *,
        widened: dict[str, list[int]] | None = None,
        data: Sequence[Data] = (),
    ) -> list[SymbolDay]:
        """Write ``events`` (and Nautilus ``data``: bars, funding updates) of ``instrument`` in
        one commit; tally them. Returns the symbol-days written, sorted.
        """
        if len(events) or not data:
            written = self.catalog.write(instrument, events, data)
        else:
            written = self.catalog.write_data(instrument, data)
        self.report.add(instrument.id.value, events, written, widened=widened)
        return written

    def close(self, t0: float) -> tuple[ImportReport, Path]:
        """Record the wall time since ``t0`` (``time.perf_counter()``) and write the report."""
        self.report.finish(time.perf_counter() - t0)
        return self.report, self.catalog.write_report(self.report.name, self.report)
