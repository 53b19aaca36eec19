"""Parity: offline bar features (catalog -> engine.run) == the BarFeatureActor fed by a real
Nautilus BacktestEngine replaying the catalog's BinanceBars, on the real ADABTC 1m klines."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from nautilus_trader.adapters.binance import BinanceBar
from nautilus_trader.model.data import Bar

from node.bar_feed import NautilusBarFeed
from node.bar_feed import backtest_bar_features
from tests.bars_setup import SHORT
from tests.bars_setup import kline_catalog
from tests.bars_setup import schemas
from training.data.catalog import MarketCatalog
from training.errors import BadInputError
from training.features.bars import BAR_FEATURES
from training.features.bars import BarFeatureSchema
from training.features.bars.offline import bar_days
from training.features.bars.offline import bar_features_table
from training.features.bars.offline import extract_bar_features
from training.features.bars.offline import load_bars


@pytest.fixture(scope="module")
def catalog(public_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketCatalog:
    return kline_catalog(public_dir, tmp_path_factory.mktemp("klines"))


def max_abs_diff(offline: pa.Table, online: pa.Table) -> float:
    """Largest |offline - online| over every float column; other columns must be equal."""
    assert offline.column_names == online.column_names and offline.num_rows == online.num_rows
    worst = 0.0
    for name in offline.column_names:
        a = offline[name].to_numpy(zero_copy_only=False)
        b = online[name].to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f":
            nan = np.isnan(a)
            np.testing.assert_array_equal(nan, np.isnan(b), name)
            worst = max(worst, float(np.abs(a[~nan] - b[~nan]).max(initial=0.0)))
        else:
            np.testing.assert_array_equal(a, b, name)
    return worst


@pytest.mark.parametrize("schema", schemas(), ids=["short", "default"])
def test_parity_on_real_klines_both_days(catalog: MarketCatalog, schema: BarFeatureSchema) -> None:
    offline = pa.concat_tables(
        extract_bar_features(catalog, "ADABTC", schema=schema, progress=False).values()
    )
    samples, stats = backtest_bar_features(catalog, "ADABTC", schema=schema)
    assert stats["bars"] == 21
    tick = float(catalog.instrument("ADABTC").price_increment)
    online = bar_features_table(samples, schema, tick)
    assert offline.num_rows == 21
    worst = max_abs_diff(offline, online)
    print(f"bar feature parity ({schema.warmup_bars}-bar warm-up): max abs diff {worst:.3g}")
    assert worst <= 1e-9
    assert online["session"].to_pylist() == [0] * 10 + [1] * 11  # the day gap
    ready = online["ready"].to_numpy(zero_copy_only=False)
    if schema == SHORT:  # both sessions warm up, then every feature is standardised
        assert ready.sum() == 6 + 7
        z = np.column_stack([online[f"z_{n}"].to_numpy() for n in BAR_FEATURES])
        assert (np.abs(z[ready]) > 0).any(axis=0).all()
    else:  # 21 bars never reach the 2-hour warm-up: marked, z all zero, nothing NaN
        assert not ready.any() and not online["z_ret_bp"].to_numpy().any()


def test_days_can_be_chosen(catalog: MarketCatalog) -> None:
    sd = bar_days(catalog, "ADABTC")[1]
    samples, stats = backtest_bar_features(catalog, "ADABTC", [sd.day], schema=SHORT)
    assert stats["bars"] == 11 and {s.session for s in samples} == {0}
    assert [s.ready for s in samples] == [False] * 4 + [True] * 7


def test_a_plain_bar_is_refused_and_a_bad_bar_is_counted(catalog: MarketCatalog) -> None:
    bars = load_bars(catalog, bar_days(catalog, "ADABTC"))
    rejected: list[BadInputError] = []
    feed = NautilusBarFeed(SHORT, on_reject=rejected.append)
    b = bars[0]
    plain = Bar(b.bar_type, b.open, b.high, b.low, b.close, b.volume, b.ts_event, b.ts_init)
    with pytest.raises(BadInputError, match="needs Binance klines") as err:
        feed.on_bar(plain)
    assert err.value.field == "quote_volume"
    nan_taker = BinanceBar(b.bar_type, b.open, b.high, b.low, b.close, b.volume, b.quote_volume,
                           b.count, Decimal("NaN"), b.taker_buy_quote_volume, b.ts_event,
                           b.ts_init)  # fmt: skip
    assert feed.on_bar(nan_taker) is None and feed.rejected == 1
    assert rejected[0].field == "taker_buy_volume"
    out = [feed.on_bar(bar) for bar in bars]  # the feed goes on with the good bars
    assert all(s is not None for s in out) and feed.last is out[-1] and feed.bars == 22
