"""FEATURES_V1 inside Nautilus: the same ``FeatureEngine`` fed from book deltas and trades.

:class:`NautilusFeatureFeed` converts Nautilus data objects into engine calls; the strategy owns
one and forwards its ``on_order_book_deltas`` / ``on_trade_tick`` / ``on_funding_rate``
callbacks. :class:`FeatureActor` is the stand-alone actor (parity tests, feature recording).
Run with ``DataEngineConfig(buffer_deltas=True)`` so each callback gets one whole exchange
message (deltas up to ``F_LAST``), exactly what the offline extractor replays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import (
    FundingRateUpdate,
    OrderBookDeltas,
    TradeTick,
)
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

from training.features import FeatureEngine, FeatureSample, FeatureSchema, schema_for

if TYPE_CHECKING:
    from training.data.catalog import MarketCatalog, SymbolDay

__all__ = ["FeatureActor", "FeatureActorConfig", "NautilusFeatureFeed", "backtest_features"]


class NautilusFeatureFeed:
    """Feeds one ``FeatureEngine`` from Nautilus objects; every emitted sample goes to ``sink``.

    Prices and sizes enter as ``as_double()``, the float the offline catalog read gives, and the
    message time is the ``ts_event`` of the message's last delta.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        sink: Callable[[FeatureSample], None] | None = None,
    ) -> None:
        self.engine = FeatureEngine(schema)
        self.sink = sink
        self.last: FeatureSample | None = None
        self.events = 0

    def _emit(self, samples: list[FeatureSample]) -> list[FeatureSample]:
        if samples:
            self.last = samples[-1]
            if self.sink is not None:
                for s in samples:
                    self.sink(s)
        return samples

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> list[FeatureSample]:
        items = deltas.deltas
        actions = []
        sides = []
        prices = []
        sizes = []
        for d in items:
            order = d.order
            actions.append(int(d.action))
            sides.append(int(order.side))
            prices.append(order.price.as_double())
            sizes.append(order.size.as_double())
        self.events += len(items)
        return self._emit(self.engine.on_deltas(items[-1].ts_event, actions, sides, prices, sizes))

    def on_trade_tick(self, tick: TradeTick) -> list[FeatureSample]:
        self.events += 1
        return self._emit(
            self.engine.on_trade(
                tick.ts_event,
                tick.price.as_double(),
                tick.size.as_double(),
                int(tick.aggressor_side),
            )
        )

    def on_funding_rate(self, update: FundingRateUpdate) -> list[FeatureSample]:
        return self._emit(self.engine.on_funding(update.ts_event, float(update.rate)))


class FeatureActorConfig(ActorConfig, frozen=True):
    """``schema`` is a ``FeatureSchema.to_dict()``; default: the market's FEATURES_V1."""

    instrument_id: str
    market: str = "spot"
    schema: dict | None = None
    keep_samples: bool = True


class FeatureActor(Actor):
    """Computes FEATURES_V1 online; keeps the samples (``samples``) unless told not to."""

    def __init__(self, config: FeatureActorConfig) -> None:
        super().__init__(config)
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        schema = (
            FeatureSchema.from_dict(config.schema) if config.schema else schema_for(config.market)
        )
        self.samples: list[FeatureSample] = []
        self.feed = NautilusFeatureFeed(
            schema, self.samples.append if config.keep_samples else None
        )

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP, managed=False)
        self.subscribe_trade_ticks(self.instrument_id)
        if self.feed.engine.schema.market == "perp":
            self.subscribe_funding_rates(self.instrument_id)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.feed.on_order_book_deltas(deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.feed.on_trade_tick(tick)

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.feed.on_funding_rate(funding_rate)


def backtest_features(
    catalog: MarketCatalog, symbol_day: SymbolDay, schema: FeatureSchema
) -> tuple[list[FeatureSample], dict[str, float]]:
    """Run a :class:`FeatureActor` over one catalog symbol-day in a real ``BacktestEngine``.

    Venue ``BINANCE`` with an L2_MBP book, ``DataEngineConfig(buffer_deltas=True)``, the day's
    deltas and trades read through ``ParquetDataCatalog.query`` (deltas added first, so on equal
    ``ts_init`` they come first, as in the offline extractor). Returns the samples and timings
    (``load_s``, ``run_s``, ``events``).
    """
    from node.engine import binance_engine, symbol_day_data

    t0 = time.perf_counter()
    instrument = catalog.instrument(symbol_day.instrument_id)
    data = symbol_day_data(catalog, symbol_day)
    engine = binance_engine(
        instrument,
        schema.market,
        trader_id="FEATURES-001",
        starting_quote=10_000_000,
        starting_base=1_000,
    )
    for items in data:
        engine.add_data(items)
    actor = FeatureActor(
        FeatureActorConfig(
            instrument_id=symbol_day.instrument_id, market=schema.market, schema=schema.to_dict()
        )
    )
    engine.add_actor(actor)
    t1 = time.perf_counter()
    try:
        engine.run()
        t2 = time.perf_counter()
    finally:
        engine.dispose()
    stats = {"load_s": t1 - t0, "run_s": t2 - t1, "events": float(actor.feed.events)}
    return list(actor.samples), stats
