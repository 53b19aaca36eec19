"""Offline FEATURES_BARS_V1 on the real ADABTC 1m klines: catalog BinanceBars -> feature tables,
checked against the raw CSV columns, and read by the training pipeline's own code."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.bars_setup import KLINE_FILES
from tests.bars_setup import SHORT
from tests.bars_setup import kline_catalog
from training.data.catalog import MarketCatalog
from training.data.sources.binance_public import parse_klines
from training.errors import BadInputError
from training.errors import NotFoundError
from training.features import SchemaMismatch
from training.features import schema_for
from training.features.bars import BAR_FEATURES
from training.features.bars import bar_schema
from training.features.bars.offline import SCHEMA_KEY
from training.features.bars.offline import bar_days
from training.features.bars.offline import extract_bar_features
from training.features.bars.offline import load_bar_columns
from training.features.bars.offline import read_bar_features
from training.pipelines.feature_set import FeatureSet
from training.simulation.simulator import SimMarket

DAY1, DAY2 = datetime.date(2021, 11, 27), datetime.date(2021, 11, 28)


@pytest.fixture(scope="module")
def catalog(public_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketCatalog:
    return kline_catalog(public_dir, tmp_path_factory.mktemp("klines"))


@pytest.fixture(scope="module")
def tables(catalog: MarketCatalog) -> dict:
    return extract_bar_features(catalog, "ADABTC", schema=SHORT, progress=False)


def test_bar_days_and_missing_days(catalog: MarketCatalog) -> None:
    assert [sd.day for sd in bar_days(catalog, "ADABTC")] == [DAY1, DAY2]
    assert [sd.day for sd in bar_days(catalog, "ADABTC.BINANCE", [DAY2])] == [DAY2]
    with pytest.raises(NotFoundError, match="2021-11-29") as err:
        bar_days(catalog, "ADABTC", [DAY1, datetime.date(2021, 11, 29)])
    assert err.value.field == "days"


def test_columns_carry_the_klines_taker_volume_and_trade_count(
    catalog: MarketCatalog, public_dir: Path
) -> None:
    [sd] = bar_days(catalog, "ADABTC", [DAY1])
    cols = load_bar_columns(catalog, sd)
    k = parse_klines(public_dir / KLINE_FILES[0])
    np.testing.assert_array_equal(cols.ts, k.close_time)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(cols, name), getattr(k, name), rtol=1e-15)
    np.testing.assert_array_equal(cols.taker_buy_volume, k.taker_buy_volume)
    np.testing.assert_array_equal(cols.quote_volume, k.quote_volume)
    np.testing.assert_array_equal(cols.trades, k.count)
    assert cols.trades[0] == 79 and cols.taker_buy_volume[0] == 19523.0


def test_raw_features_match_the_csv(tables: dict, public_dir: Path) -> None:
    """Each raw feature recomputed with numpy from the CSV rows of each day (a new session)."""
    for table, name in zip(tables.values(), KLINE_FILES, strict=True):
        k = parse_klines(public_dir / name)
        raw = {n: table[f"raw_{n}"].to_numpy() for n in BAR_FEATURES}
        prev = np.r_[k.open[0], k.close[:-1]]
        np.testing.assert_allclose(raw["ret_bp"], np.log(k.close / prev) * 1e4, atol=1e-9)
        np.testing.assert_allclose(raw["range_bp"], np.log(k.high / k.low) * 1e4, atol=1e-9)
        rng = k.high - k.low
        body = np.divide(k.close - k.open, rng, out=np.zeros(len(k)), where=rng > 0)
        np.testing.assert_allclose(raw["body"], body, atol=1e-12)
        np.testing.assert_allclose(raw["log_volume"], np.log1p(k.volume), atol=1e-12)
        np.testing.assert_allclose(raw["log_trades"], np.log1p(k.count), atol=1e-12)
        w = SHORT.flow_window_bars  # rolling sums over the flow window, within the day
        tb = np.convolve(k.taker_buy_volume, np.ones(w))[: len(k)]
        vol = np.convolve(k.volume, np.ones(w))[: len(k)]
        np.testing.assert_allclose(raw["taker_imb"], 2 * tb / vol - 1, atol=1e-12)
        ret = raw["ret_bp"]
        rv = [ret[max(0, i - SHORT.rv_window_bars + 1) : i + 1].std() for i in range(len(k))]
        np.testing.assert_allclose(raw["rv_bp"], rv, atol=1e-9)
        assert np.abs(raw["taker_imb"]).max() <= 1.0


def test_sessions_warm_up_and_table_layout(tables: dict) -> None:
    t1, t2 = tables.values()
    assert (t1.num_rows, t2.num_rows) == (10, 11)
    # a 24 h gap between the days: the second starts a new session and warms up again
    assert set(t1["session"].to_pylist()) == {0} and set(t2["session"].to_pylist()) == {1}
    for t in (t1, t2):
        ready = t["ready"].to_numpy(zero_copy_only=False)
        assert not ready[: SHORT.warmup_bars].any() and ready[SHORT.warmup_bars :].all()
        z = np.column_stack([t[f"z_{n}"].to_numpy() for n in BAR_FEATURES])
        assert not z[~ready].any() and np.isfinite(z).all() and np.abs(z[ready]).sum() > 0
        close = t["close"].to_numpy()
        assert (t["mid"].to_numpy() == close).all() and t["book_ok"].to_numpy().all()
        tick = 1e-8  # ADABTC's price step: a one-tick book centred on the close
        np.testing.assert_allclose(t["best_ask"].to_numpy() - t["best_bid"].to_numpy(), tick)
        np.testing.assert_allclose(t["spread_bp"].to_numpy(), tick / close * 1e4)
        lows = t["next_sell_low"].to_numpy()
        np.testing.assert_array_equal(lows[:-1], t["low"].to_numpy()[1:])
        assert np.isnan(lows[-1])  # the session ends (gap) / the data ends


def test_days_through_one_engine_equal_fresh_engines_across_the_gap(
    catalog: MarketCatalog, tables: dict
) -> None:
    fresh = extract_bar_features(catalog, "ADABTC", schema=SHORT, continuous=False, progress=False)
    for a, b in zip(tables.values(), fresh.values(), strict=True):
        for n in BAR_FEATURES:
            np.testing.assert_array_equal(a[f"z_{n}"].to_numpy(), b[f"z_{n}"].to_numpy())


def test_files_round_trip_the_schema_and_refuse_another(
    catalog: MarketCatalog, tmp_path: Path
) -> None:
    paths = extract_bar_features(catalog, "ADABTC", schema=SHORT, out_dir=tmp_path, progress=False)
    p = paths[bar_days(catalog, "ADABTC", [DAY2])[0]]
    assert p == tmp_path / "bar_features" / "ADABTC.BINANCE" / "2021-11-28.parquet"
    schema, table = read_bar_features(p)
    assert schema == SHORT and table.num_rows == 11
    v1 = table.replace_schema_metadata(
        {SCHEMA_KEY: json.dumps(schema_for("spot").to_dict()).encode()}
    )
    pq.write_table(v1, tmp_path / "v1.parquet")
    with pytest.raises(SchemaMismatch, match="'FEATURES_V1' is not 'FEATURES_BARS_V1'"):
        read_bar_features(tmp_path / "v1.parquet")
    with pytest.raises(BadInputError, match=r"schema\.market"):
        extract_bar_features(catalog, "ADABTC", schema=bar_schema("perp"), progress=False)


def test_the_training_pipeline_reads_the_tables(tables: dict) -> None:
    fs = FeatureSet.from_tables(tables, SHORT)  # type: ignore[arg-type]
    assert len(fs) == 6 + 7 and fs.lengths == (6, 7)  # ready rows per session
    assert fs.X.shape == (13, len(BAR_FEATURES)) and np.isfinite(fs.X).all()
    market = SimMarket.from_table(pa.concat_tables(tables.values()))
    assert int(market.tradable.sum()) == 13
