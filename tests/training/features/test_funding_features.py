"""``funding_rate_bp`` offline equals the online feed: the catalog's funding updates (kept by the
importer from ``@markPrice`` frames) go through the offline extractor and through a real Nautilus
``BacktestEngine`` + :class:`node.feature_actor.FeatureActor`, sample by sample."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.training.data import funding_setup
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.sources.binance_ws import import_ws
from training.features.cache import cache_key
from training.features.offline import extract_features
from training.features.schema import schema_for

MS = 1_000_000
SCHEMA = schema_for("perp")
FUNDING = SCHEMA.names.index("funding_rate_bp")


@pytest.fixture(scope="module")
def marked(ws_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("funding_features")
    path, frames = funding_setup.build(ws_dir, root)
    import_ws([path], root / "catalog")
    cat = MarketCatalog(root / "catalog")
    [sd] = cat.symbol_days()
    table = extract_features(cat, sd.instrument_id, sd.day, SCHEMA)
    return {"catalog": cat, "sd": sd, "frames": frames, "table": table}


def test_offline_funding_rate_bp_is_the_last_mark_price_rate(marked: dict) -> None:
    table, frames = marked["table"], marked["frames"]
    ts = table.column("ts").to_numpy()
    got = table.column("raw_funding_rate_bp").to_numpy()
    e_ns = np.array([e * MS for e, *_ in frames])
    rates = np.array([float(Decimal(r)) * 1e4 for _, _, r, _ in frames])
    last = np.searchsorted(e_ns, ts, side="left") - 1  # the last frame before each sample
    want = np.where(last >= 0, rates[np.maximum(last, 0)], 0.0)
    assert len(ts) == 60
    np.testing.assert_array_equal(got, want)
    assert got[0] == 0.0 and ts[0] <= e_ns[0]  # before the first update: 0.0
    assert set(np.round(got[1:], 6)) == {1.0, 1.284}  # r * 1e4 after it


def test_offline_equals_the_nautilus_feed_sample_by_sample(marked: dict) -> None:
    from node.feature_actor import backtest_features

    samples, _ = backtest_features(marked["catalog"], marked["sd"], SCHEMA)
    table = marked["table"]
    assert [s.ts_ns for s in samples] == table.column("ts").to_pylist()
    online = np.stack([s.raw for s in samples])
    offline = np.stack([table.column(f"raw_{n}").to_numpy() for n in SCHEMA.names], axis=1)
    np.testing.assert_array_equal(online[:, FUNDING], offline[:, FUNDING])
    np.testing.assert_array_equal(online, offline)
    assert (online[:, FUNDING] != 0.0).sum() == len(samples) - 1


def test_feature_cache_key_covers_the_days_funding(marked: dict) -> None:
    cat: MarketCatalog = marked["catalog"]
    sd: SymbolDay = marked["sd"]
    before = cache_key(cat, sd, SCHEMA)
    updates = cat.load_funding(sd.instrument_id, sd.day)
    instrument = cat.instrument(sd.instrument_id)
    cat.write_data(instrument, updates[:10])  # re-writing the day's funding replaces it
    try:
        assert len(cat.load_funding(sd.instrument_id, sd.day)) == 10
        assert cache_key(cat, sd, SCHEMA) != before
    finally:
        cat.write_data(instrument, updates)
    assert cache_key(cat, sd, SCHEMA) == before
