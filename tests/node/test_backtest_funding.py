"""A Nautilus backtest of a perp day replays the catalog's funding updates: the engine
``nhmm backtest`` builds (:func:`node.backtest.venue_engine`) fed :func:`node.engine.symbol_day_data`
delivers every ``FundingRateUpdate`` to a subscriber, at its ``ts_init``, in order, among the book
and trades: what ``PolicyHMMStrategy`` gets by calling ``self.subscribe_funding_rates(instrument_id)``
in ``on_start`` and handling ``on_funding_rate``. And the loopback venue replays a recording's own
``@markPrice`` frames (the rates the import kept), synthesising none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pytest
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

from node.backtest import VenueOptions
from node.backtest import venue_engine
from node.config import PolicyHMMStrategyConfig
from node.engine import symbol_day_data
from node.strategy import PolicyHMMStrategy
from node.venue.recording import MARK_PRICE
from node.venue.recording import load_recording
from serving.client import InProcessModelClient
from serving.testing import make_bundle
from tests.node.venue.wire import next_json
from tests.node.venue.wire import venue_session
from tests.training.data import funding_setup
from training.data.catalog import MarketCatalog
from training.data.sources.binance_ws import import_ws
from training.features.offline import extract_features


class FundingProbeConfig(ActorConfig, frozen=True):
    instrument_id: str


class FundingProbe(Actor):
    """Subscribes as the strategy will; records each update with the clock when it arrives."""

    def __init__(self, config: FundingProbeConfig) -> None:
        super().__init__(config)
        self.iid = InstrumentId.from_str(config.instrument_id)
        self.got: list[tuple[FundingRateUpdate, int]] = []
        self.book_messages = 0

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.iid, BookType.L2_MBP, managed=False)
        self.subscribe_funding_rates(self.iid)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.book_messages += 1

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.got.append((funding_rate, self.clock.timestamp_ns()))


@pytest.fixture(scope="module")
def marked(ws_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("bt_funding")
    return funding_setup.build(ws_dir, root)


@pytest.fixture(scope="module")
def perp_catalog(marked: tuple[Path, list]) -> MarketCatalog:
    path, _ = marked
    import_ws([path], path.parent / "catalog")
    return MarketCatalog(path.parent / "catalog")


def test_backtest_engine_delivers_the_days_funding_updates(perp_catalog: MarketCatalog) -> None:
    [sd] = perp_catalog.symbol_days()
    want = perp_catalog.load_funding(sd.instrument_id, sd.day)
    data = symbol_day_data(perp_catalog, sd)
    assert data[-1] == want and len(want) == 60  # added after deltas and trades
    instrument = perp_catalog.instrument(sd.instrument_id)
    engine = venue_engine(instrument, "perp", VenueOptions())
    for items in data:
        engine.add_data(items)
    probe = FundingProbe(FundingProbeConfig(instrument_id=sd.instrument_id))
    engine.add_actor(probe)
    try:
        engine.run()
    finally:
        engine.dispose()
    assert [u for u, _ in probe.got] == want
    assert [(float(u.rate), u.next_funding_ns) for u, _ in probe.got] == [
        (float(u.rate), u.next_funding_ns) for u in want
    ]
    assert [clock for _, clock in probe.got] == [u.ts_init for u in want]
    assert probe.book_messages > 1000  # interleaved with the replayed book


def test_the_cost_model_settles_funding_from_the_catalogs_rates(
    perp_catalog: MarketCatalog,
) -> None:
    """``nhmm train``, the sweep and ``nhmm backtest`` price funding at the rate the data says
    will be settled (the last ``@markPrice`` estimate before its funding time), not 1 bp."""
    from training.costs import CostModel

    sds = perp_catalog.symbol_days()
    updates = perp_catalog.funding_of(sds)
    [T] = {u.next_funding_ns for u in updates}
    costs = CostModel.for_instrument(perp_catalog.instrument(sds[0].instrument_id))
    settled = costs.with_funding(updates)
    assert settled.funding_rates == ((T, float(updates[-1].rate) * 1e4),)
    assert settled.funding_rates[0][1] == pytest.approx(1.284) != costs.funding_bps
    assert settled.funding_bps_between(1, T - 1, T) == pytest.approx(1.284)


def test_venue_replays_the_recordings_mark_price_frames(marked: tuple[Path, list]) -> None:
    path, frames = marked
    rec = load_recording([path])
    assert rec.counts()["markPrice"] + sum(m.kind == MARK_PRICE for m in rec.lead) == len(frames)

    async def run() -> list[dict]:
        async with venue_session(rec, speed=60.0) as w:
            url = f"{w.urls.ws}/stream?streams=btcusdt@markPrice@1s"
            ws = await w.session.ws_connect(url)
            await w.ok("POST", "/_venue/replay/start", signed=False)
            out = []
            try:
                while True:
                    out.append((await next_json(ws, timeout=1.0))["data"])
            except (TimeoutError, aiohttp.ClientError):
                return out

    got = asyncio.run(run())
    sent = {(f["E"], f["r"]) for f in got}
    recorded = [msgspec.json.decode(m.data) for m in rec.messages if m.kind == MARK_PRICE]
    assert len(got) == len(recorded) > 40  # no synthesised frame in between
    offset = got[0]["E"] - recorded[0]["E"]
    assert sent == {(f["E"] + offset, f["r"]) for f in recorded}
    assert all(g["T"] - f["T"] == offset for g, f in zip(got, recorded, strict=True))


class SampleLog(PolicyHMMStrategy):
    """The strategy, keeping every feature sample its feed emits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.samples: list[Any] = []

    def _on_sample(self, s: Any) -> None:
        self.samples.append(s)
        super()._on_sample(s)


def test_the_strategy_feeds_the_catalogs_funding_to_its_features(
    perp_catalog: MarketCatalog, tmp_path: Path
) -> None:
    """``PolicyHMMStrategy`` on a perp subscribes to funding: in the backtest its samples carry
    the catalog's rate in ``funding_rate_bp``, sample for sample as the offline extractor."""
    [sd] = perp_catalog.symbol_days()
    bundle, _ = make_bundle(4, n=300, memory=False, market="perp")
    schema = bundle.feature_schema()
    instrument = perp_catalog.instrument(sd.instrument_id)
    engine = venue_engine(instrument, "perp", VenueOptions())
    for items in symbol_day_data(perp_catalog, sd):
        engine.add_data(items)
    cfg = PolicyHMMStrategyConfig(instrument_id=sd.instrument_id, market="perp",
                                  state_dir=str(tmp_path))  # fmt: skip
    strategy = SampleLog(cfg, model=InProcessModelClient(bundle))
    engine.add_strategy(strategy)
    try:
        engine.run()
    finally:
        engine.dispose()
    table = extract_features(perp_catalog, sd.instrument_id, sd.day, schema)
    at = schema.names.index("funding_rate_bp")
    assert [s.ts_ns for s in strategy.samples] == table.column("ts").to_pylist()
    online = np.array([s.raw[at] for s in strategy.samples])
    np.testing.assert_array_equal(online, table.column("raw_funding_rate_bp").to_numpy())
    assert set(np.round(online[1:], 6)) == {1.0, 1.284}  # the fixture's two rates, in bp
