"""Binance public-data files (data.binance.vision layouts) → catalog: ``nhmm data import-binance``.

Kinds: ``trades``, ``aggTrades`` → trades; ``bookTicker`` → quotes; USD-M ``T_DEPTH`` snap/update →
L2 deltas (sequenced with ``pu``); ``1m`` klines → Nautilus ``Bar``s; USD-M ``fundingRate`` →
``FundingRateUpdate``s (one per settlement, the settled rate: :mod:`.funding`); Nautilus's Parquet
copy of spot trades (``timestamp, trade_id, price, quantity, buyer_maker``). Files may be zipped,
gzipped or plain,
with or without a header (:mod:`training.data.csv`); timestamps in ms, µs or ns are told apart by
magnitude. A bad row fails the whole import with ``file:line`` and the column, before anything is
written. Parsers live in ``_parse`` (kind and market detection too), depth sequencing in ``_depth``,
klines in :mod:`.bars`.

>>> detect_kind("BTCUSDT-aggTrades-2024-08-08.zip")
('aggTrades', 'BTCUSDT')
>>> detect_kind("btcusdt-depth-snap.csv")
('depth', 'BTCUSDT')
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.instruments import Instrument
from tqdm import tqdm

from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.csv import DataFileError
from training.data.csv import input_files
from training.data.instruments import Market
from training.data.instruments import fitted_instrument
from training.data.report import ImportReport
from training.data.sources._importer import ImportWriter
from training.data.sources._importer import new_report
from training.data.sources.binance_public._depth import DepthResult
from training.data.sources.binance_public._depth import depth_deltas
from training.data.sources.binance_public._parse import KINDS
from training.data.sources.binance_public._parse import DepthRows
from training.data.sources.binance_public._parse import detect_kind
from training.data.sources.binance_public._parse import detect_market
from training.data.sources.binance_public._parse import parse_book_ticker
from training.data.sources.binance_public._parse import parse_depth
from training.data.sources.binance_public._parse import parse_trades
from training.data.sources.binance_public._parse import parse_trades_parquet
from training.data.sources.binance_public.bars import Klines
from training.data.sources.binance_public.bars import klines_to_bars
from training.data.sources.binance_public.bars import parse_klines
from training.data.sources.binance_public.funding import FundingRows
from training.data.sources.binance_public.funding import funding_to_updates
from training.data.sources.binance_public.funding import parse_funding_rate

__all__ = [
    "KINDS",
    "DepthResult",
    "DepthRows",
    "FundingRows",
    "Klines",
    "depth_deltas",
    "detect_kind",
    "detect_market",
    "funding_to_updates",
    "import_binance",
    "klines_to_bars",
    "parse_book_ticker",
    "parse_depth",
    "parse_funding_rate",
    "parse_klines",
    "parse_trades",
    "parse_trades_parquet",
]


@dataclass
class _Group:
    """Everything parsed for one (market, symbol)."""

    market: Market
    symbol: str
    trades: list[TradeColumns] = field(default_factory=list)
    quotes: list[QuoteColumns] = field(default_factory=list)
    depth: list[DepthRows] = field(default_factory=list)
    klines: list[Klines] = field(default_factory=list)
    funding: list[FundingRows] = field(default_factory=list)

    def parse(self, path: Path, kind: str) -> None:
        if kind == "parquet-trades":
            self.trades.append(parse_trades_parquet(path))
        elif kind in ("trades", "aggTrades"):
            self.trades.append(parse_trades(path, kind))
        elif kind == "bookTicker":
            self.quotes.append(parse_book_ticker(path))
        elif kind == "depth":
            rows = parse_depth(path)
            if rows.symbol != self.symbol:
                raise DataFileError(
                    f"{path}: rows are {rows.symbol}, expected {self.symbol}",
                    path=path,
                    field="symbol",
                )
            self.depth.append(rows)
        elif kind == "klines":
            self.klines.append(parse_klines(path))
        elif kind == "fundingRate":
            if self.market != "usdm":
                raise DataFileError(
                    f"{path}: fundingRate is a USD-M perpetual's; not {self.market}",
                    path=path,
                    field="market",
                )
            self.funding.append(parse_funding_rate(path))
        else:
            raise DataFileError(
                f"{path}: unknown kind {kind!r}; one of {KINDS}", path=path, field="kind"
            )

    def events(self) -> tuple[MarketEvents, DepthResult]:
        """All trades and quotes by ``ts_event``, and the sequenced depth."""
        depth = depth_deltas(self.depth, self.market)
        trades, quotes = TradeColumns.concat(self.trades), QuoteColumns.concat(self.quotes)
        if len(self.trades) > 1:
            trades = trades.take(np.argsort(trades.ts_event, kind="stable"))
        if len(self.quotes) > 1:
            quotes = quotes.take(np.argsort(quotes.ts_event, kind="stable"))
        return MarketEvents(depth.deltas, trades, quotes), depth


@dataclass(frozen=True)
class _Plan:
    """One instrument ready to write: precision fitted to its events and bars."""

    instrument: Instrument
    widened: dict[str, list[int]]
    events: MarketEvents
    depth: DepthResult
    bars: list[Bar]
    funding: list[FundingRateUpdate]


def _classify(
    path: Path, kind: str | None, market: str, symbol: str | None
) -> tuple[str, Market, str]:
    if path.suffix == ".parquet":
        file_kind, file_symbol = detect_kind(path.name) if kind is None else (kind, None)
        if file_kind != "trades":
            raise DataFileError(f"{path}: only trades are supported as Parquet", path=path)
        file_kind = "parquet-trades"
    elif kind is not None:
        file_kind = kind
        try:
            file_symbol = detect_kind(path.name)[1]
        except DataFileError:
            file_symbol = None
    else:
        file_kind, file_symbol = detect_kind(path.name)
    sym = (symbol or file_symbol or "").upper()
    if not sym:
        raise DataFileError(
            f"{path}: cannot tell the symbol from the name; pass --symbol",
            path=path,
            field="symbol",
        )
    mkt: Market = (
        detect_market(path, file_kind.removeprefix("parquet-")) if market == "auto" else market  # type: ignore[assignment]
    )
    return file_kind, mkt, sym


def _plan(group: _Group, exchange_info: Path | None) -> _Plan:
    events, depth = group.events()
    instrument, widened = fitted_instrument(
        group.symbol,
        group.market,
        events,
        exchange_info,
        prices=[p for k in group.klines for p in k.prices],
        sizes=[k.volume for k in group.klines],
    )
    bars = [b for k in group.klines for b in klines_to_bars(instrument, k)]
    bars.sort(key=lambda b: b.ts_init)
    funding = funding_to_updates(instrument.id.value, group.funding)
    return _Plan(instrument, widened, events, depth, bars, funding)


def import_binance(
    paths: Sequence[Path],
    out: Path,
    *,
    kind: str | None = None,
    market: str = "auto",
    symbol: str | None = None,
    exchange_info: Path | None = None,
    name: str | None = None,
    progress: bool = True,
) -> tuple[ImportReport, Path]:
    """Parse every file first (any bad row aborts before writing), then write one partition per
    symbol-day and the report; returns (report, report path)."""
    t0 = time.perf_counter()
    paths = input_files(paths)
    groups: dict[tuple[Market, str], _Group] = {}
    for path in tqdm(paths, desc="parse", unit="file", disable=not progress):
        file_kind, mkt, sym = _classify(path, kind, market, symbol)
        groups.setdefault((mkt, sym), _Group(mkt, sym)).parse(path, file_kind)
    plans = [_plan(g, exchange_info) for g in groups.values()]

    report = new_report(name, "import-binance", paths)
    report.extra.update(depth_messages=0, depth_dropped=0, bars=0, funding_updates=0)
    writer = ImportWriter(out, report)
    for p in plans:
        writer.write(p.instrument, p.events, widened=p.widened, data=[*p.bars, *p.funding])
        report.gaps += p.depth.gaps
        report.resyncs += p.depth.resyncs
        report.extra["depth_messages"] += p.depth.messages
        report.extra["depth_dropped"] += p.depth.dropped
        report.extra["bars"] += len(p.bars)
        report.extra["funding_updates"] += len(p.funding)
        if p.bars:
            report.events += len(p.bars)
            report.add_ts(p.bars[0].ts_event)
            report.add_ts(p.bars[-1].ts_event)
    return writer.close(t0)
