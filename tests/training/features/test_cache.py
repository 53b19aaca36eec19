"""Parallel cached feature extraction: keys, one Ray task per missing symbol-day, cache hits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from training.data.catalog import MarketCatalog
from training.features import schema_for
from training.features.cache import cache_key
from training.features.cache import cached_features
from training.features.cache import load_tables
from training.features.offline import extract_many
from training.features.offline import z_columns


def test_cache_key_depends_on_data_and_schema(synth_catalog: Path) -> None:
    catalog = MarketCatalog(synth_catalog)
    sd0, sd1 = catalog.symbol_days()[:2]
    schema = schema_for("spot")
    key = cache_key(catalog, sd0, schema)
    assert key == cache_key(catalog, sd0, schema)
    assert key != cache_key(catalog, sd1, schema)
    assert key != cache_key(catalog, sd0, dataclasses.replace(schema, rv_window_s=30.0))
    # a day's features continue the day before's engine: its key chains that day's key
    assert cache_key(catalog, sd1, schema, key) != cache_key(catalog, sd1, schema)


def test_second_call_hits_cache_and_matches_direct_extraction(
    synth_catalog: Path, tmp_path: Path, local_ray: None
) -> None:
    catalog = MarketCatalog(synth_catalog)
    sds = catalog.symbol_days()
    assert len(sds) == 3
    first = cached_features(catalog, sds, cache_dir=tmp_path, progress=False)
    assert (first.hits, first.misses) == (0, 3)
    mtimes = {sd: p.stat().st_mtime_ns for sd, p in first.paths.items()}
    second = cached_features(catalog, sds, cache_dir=tmp_path, progress=False)
    assert (second.hits, second.misses) == (3, 0)
    assert second.paths == first.paths
    assert {sd: p.stat().st_mtime_ns for sd, p in second.paths.items()} == mtimes
    assert not list(tmp_path.rglob("*.tmp"))

    # issue 11: one continuous engine over the days, as the backtest and the live node run it
    # (these 3-hour days have 21-hour gaps, so each starts a new session in that engine too)
    schema, tables = load_tables(second.paths)
    direct = extract_many(catalog, sds[1].symbol, [sd.day for sd in sds], progress=False)
    for col in ("ts", "ready", *z_columns(schema)):
        np.testing.assert_array_equal(
            tables[sds[1]].column(col).to_numpy(), direct[sds[1]].column(col).to_numpy()
        )
    assert "next_sell_low" in tables[sds[1]].column_names


def test_worker_error_names_the_partition(
    synth_catalog: Path, tmp_path: Path, local_ray: None
) -> None:
    catalog = MarketCatalog(synth_catalog)
    sd = catalog.symbol_days()[0]
    with pytest.raises(Exception, match=r"schema\.market"):
        cached_features(
            catalog, [sd], cache_dir=tmp_path, schema=schema_for("perp"), progress=False
        )
    assert not list(tmp_path.rglob("*.parquet"))
