"""The Binance backtest engine and the catalog data it replays, built one way for every runner.

An L2_MBP Binance venue (cash account for spot, margin for perpetuals) with
``DataEngineConfig(buffer_deltas=True)``, so handlers get one whole exchange message per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.engine import BacktestEngineConfig
from nautilus_trader.config import DataEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money

if TYPE_CHECKING:
    from nautilus_trader.model.instruments import Instrument

    from training.data.catalog import MarketCatalog
    from training.data.catalog import SymbolDay

__all__ = ["binance_engine", "run_past_last_event", "symbol_day_data"]


def binance_engine(
    instrument: Instrument,
    market: str,
    *,
    trader_id: str,
    starting_quote: float,
    starting_base: float,
    logging: LoggingConfig | None = None,
    book_type: BookType = BookType.L2_MBP,
    **venue_kwargs: Any,
) -> BacktestEngine:
    """A ``BacktestEngine`` holding ``instrument`` on its L2_MBP Binance venue (``L1_MBP`` to
    replay bars); spot accounts also start with ``starting_base`` of the base asset.
    ``venue_kwargs`` go to ``add_venue`` (``fill_model``, ``latency_model``, ...)."""
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=trader_id,
            logging=logging or LoggingConfig(bypass_logging=True),
            data_engine=DataEngineConfig(buffer_deltas=True),
        )
    )
    balances = [Money(starting_quote, instrument.quote_currency)]
    base = getattr(instrument, "base_currency", None)
    if market == "spot" and base is not None:
        balances.append(Money(starting_base, base))
    engine.add_venue(
        Venue(instrument.id.venue.value),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH if market == "spot" else AccountType.MARGIN,
        base_currency=None,
        starting_balances=balances,
        book_type=book_type,
        **venue_kwargs,
    )
    engine.add_instrument(instrument)
    return engine


def symbol_day_data(catalog: MarketCatalog, symbol_day: SymbolDay) -> list[list[Any]]:
    """The day's deltas, trades and (perps) funding updates as Nautilus objects, read from
    exactly that symbol-day's files (a time-range query could miss the day-start snapshot: files
    are named by ``ts_init``). Added in this order, so on equal ``ts_init`` the engine delivers
    deltas, then trades, then funding, as the offline extractor does."""
    files = catalog.files(symbol_day)
    data = []
    for kind, cls in (("order_book_deltas", OrderBookDelta), ("trade_tick", TradeTick)):
        if kind in files:
            items = catalog.nautilus.query(cls, files=[str(files[kind])])
            if items:
                data.append(items)
    funding = catalog.load_funding(symbol_day.instrument_id, symbol_day.day)
    if funding:
        data.append(funding)
    return data


def run_past_last_event(engine: BacktestEngine, last_ns: int, latency_budget_ms: float) -> None:
    """Run ``engine`` over its data and on for the latency budget (+1 s) past ``last_ns``, the
    last event's ``ts_init``: the model's answer to the last sample is a time alert after it
    (:mod:`node.inference`), and Nautilus fires alerts up to the run's end only."""
    end_ns = last_ns + round((latency_budget_ms / 1e3 + 1.0) * 1e9)
    engine.run(end=pd.Timestamp(end_ns, unit="ns", tz="UTC"))
