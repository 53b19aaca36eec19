"""FEATURES_BARS_V1 inside Nautilus: the same ``BarFeatureEngine`` fed from 1-minute bars.

Nautilus's Binance adapter delivers closed klines as ``BinanceBar`` (a ``Bar`` that keeps the
kline's quote volume, trade count and taker-buy volume), and ``nhmm data import-binance`` writes
exactly those to the catalog, so a backtest replays what the live node receives.
:class:`NautilusBarFeed` turns one bar into one engine call (prices ``as_double()``, volumes
``float(Decimal)``: the floats the offline extractor decodes); a strategy owns one and forwards
its ``on_bar``. :class:`BarFeatureActor` is the stand-alone actor (parity tests, recording);
:func:`backtest_bar_features` replays catalog bars through it in a real ``BacktestEngine``.

A plain ``Bar`` (no trade count or taker-buy volume: another source or an internal aggregation)
cannot give these features and is refused (:class:`~training.errors.BadInputError`). A bar with
impossible values is dropped, counted in ``rejected`` and reported to ``on_reject`` (the node
logs it): one bad message must not stop the node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

from training.data.sources.binance_public.bars import bar_type_for
from training.errors import BadInputError
from training.features.bars import BarFeatureEngine
from training.features.bars import BarFeatureSchema
from training.features.bars import BarSample
from training.features.bars import bar_schema

if TYPE_CHECKING:
    import datetime

    from training.data.catalog import MarketCatalog

__all__ = [
    "BarFeatureActor",
    "BarFeatureActorConfig",
    "NautilusBarFeed",
    "backtest_bar_features",
    "bar_values",
]

_EXTRAS = ("quote_volume", "taker_buy_base_volume", "count")


def bar_values(bar: Bar) -> tuple[int, float, float, float, float, float, float, float, int]:
    """``BarFeatureEngine.on_bar`` arguments of a Binance kline bar.

    >>> from nautilus_trader.test_kit.stubs.data import TestDataStubs
    >>> bar_values(TestDataStubs.bar_5decimal())
    Traceback (most recent call last):
    ...
    training.errors.BadInputError: Bar has no quote_volume: ... needs Binance klines (BinanceBar)
    """
    for name in _EXTRAS:
        if getattr(bar, name, None) is None:
            raise BadInputError(
                f"{type(bar).__name__} has no {name}: FEATURES_BARS_V1 needs Binance klines "
                "(BinanceBar)",
                field=name,
            )
    return (
        bar.ts_event,
        bar.open.as_double(),
        bar.high.as_double(),
        bar.low.as_double(),
        bar.close.as_double(),
        bar.volume.as_double(),
        float(bar.quote_volume),  # type: ignore[attr-defined]
        float(bar.taker_buy_base_volume),  # type: ignore[attr-defined]
        int(bar.count),  # type: ignore[attr-defined]
    )


class NautilusBarFeed:
    """Feeds one ``BarFeatureEngine`` from Nautilus bars; every sample goes to ``sink``."""

    def __init__(
        self,
        schema: BarFeatureSchema,
        sink: Callable[[BarSample], None] | None = None,
        on_reject: Callable[[BadInputError], None] | None = None,
    ) -> None:
        self.engine = BarFeatureEngine(schema)
        self.sink = sink
        self.on_reject = on_reject
        self.last: BarSample | None = None
        self.bars = 0
        self.rejected = 0

    def on_bar(self, bar: Bar) -> BarSample | None:
        """One closed bar -> its sample (None when the bar was stale or rejected)."""
        values = bar_values(bar)
        self.bars += 1
        try:
            sample = self.engine.on_bar(*values)
        except BadInputError as err:
            self.rejected += 1
            if self.on_reject is not None:
                self.on_reject(err)
            return None
        if sample is not None:
            self.last = sample
            if self.sink is not None:
                self.sink(sample)
        return sample


class BarFeatureActorConfig(ActorConfig, frozen=True):
    """``schema`` is a ``BarFeatureSchema.to_dict()`` (default FEATURES_BARS_V1 of ``market``);
    ``bar_type`` defaults to the instrument's ``1-MINUTE-LAST-EXTERNAL`` klines."""

    instrument_id: str
    market: str = "spot"
    bar_type: str | None = None
    schema: dict | None = None
    keep_samples: bool = True


class BarFeatureActor(Actor):
    """Computes FEATURES_BARS_V1 online; keeps the samples (``samples``) unless told not to."""

    def __init__(self, config: BarFeatureActorConfig) -> None:
        super().__init__(config)
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        schema = (
            BarFeatureSchema.from_dict(config.schema)
            if config.schema
            else bar_schema(config.market)
        )
        self.samples: list[BarSample] = []
        self.feed = NautilusBarFeed(
            schema, self.samples.append if config.keep_samples else None, self._rejected
        )

    def _rejected(self, err: BadInputError) -> None:
        self.log.warning(f"bar rejected: {err}")

    def on_start(self) -> None:
        if self.config.bar_type:
            bar_type = BarType.from_str(self.config.bar_type)
        else:
            instrument = self.cache.instrument(self.instrument_id)
            if instrument is None:
                raise BadInputError(f"instrument {self.instrument_id} is not in the cache",
                                    field="instrument_id")  # fmt: skip
            bar_type = bar_type_for(instrument)
        self.subscribe_bars(bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.feed.on_bar(bar)


def backtest_bar_features(
    catalog: MarketCatalog,
    symbol: str,
    days: list[datetime.date] | None = None,
    schema: BarFeatureSchema | None = None,
) -> tuple[list[BarSample], dict[str, float]]:
    """Replay ``symbol``'s catalog ``BinanceBar``s (``days``, default all) through a
    :class:`BarFeatureActor` in a real ``BacktestEngine`` (Binance venue, ``L1_MBP``: bars,
    no book). Returns the samples and ``{"bars", "load_s", "run_s"}``."""
    from node.engine import binance_engine
    from training.features.bars.offline import bar_days
    from training.features.bars.offline import load_bars
    from training.features.offline import market_of

    t0 = time.perf_counter()
    sds = bar_days(catalog, symbol, days)
    instrument = catalog.instrument(sds[0].instrument_id)
    schema = schema or bar_schema(market_of(instrument.id.value))
    bars = load_bars(catalog, sds)
    engine = binance_engine(
        instrument,
        schema.market,
        trader_id="BARFEATURES-001",
        starting_quote=10_000_000,
        starting_base=1_000,
        book_type=BookType.L1_MBP,
    )
    engine.add_data(bars)
    actor = BarFeatureActor(
        BarFeatureActorConfig(
            instrument_id=instrument.id.value, market=schema.market, schema=schema.to_dict()
        )
    )
    engine.add_actor(actor)
    t1 = time.perf_counter()
    try:
        engine.run()
        t2 = time.perf_counter()
    finally:
        engine.dispose()
    stats = {"bars": float(actor.feed.bars), "load_s": t1 - t0, "run_s": t2 - t1}
    return list(actor.samples), stats
