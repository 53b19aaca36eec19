"""Market data: every source → a Nautilus Parquet catalog, one partition per symbol-day.

Where things are::

    columns       MarketEvents (deltas, trades, quotes as numpy columns): what sources produce
    book          the L2 book and Binance depth sequencing (gaps, resyncs, the BBO check)
    fixed         Nautilus 128-bit fixed point (encode/decode prices and sizes)
    catalog       MarketCatalog (write, select, load), SymbolDay, day-start snapshots
    instruments   Binance instruments from exchangeInfo; the one precision fit
    report        ImportReport: what an import wrote (it tallies, importers call it)
    csv           the CSV reader CSV sources share; DataFileError (file:line, column)
    sources/      binance_ws, binance_public/, tardis, download, synth/

The names below load their module on first use, so ``import training.data`` stays light (the
feature engine imports ``training.data.columns`` without Nautilus).

>>> import training.data
>>> training.data.SymbolDay.__module__
'training.data.catalog'
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "MarketEvents": "columns",
    "DeltaColumns": "columns",
    "TradeColumns": "columns",
    "QuoteColumns": "columns",
    "BinanceBookSync": "book",
    "MarketCatalog": "catalog",
    "SymbolDay": "catalog",
    "binance_instrument": "instruments",
    "fit_precision": "instruments",
    "ImportReport": "report",
    "DataFileError": "csv",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
