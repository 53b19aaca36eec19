"""FEATURES_BARS_V1 engine on hand-made bars: values, warm-up, causal z, sessions, bad bars."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.bars_setup import SHORT
from tests.import_probe import heavy_imports
from training.errors import BadInputError
from training.features.bars import BAR_FEATURES
from training.features.bars import BarColumns
from training.features.bars import BarFeatureEngine
from training.features.bars import BarSample

M = 60_000_000_000  # one minute in ns
T0 = 1_700_000_000 * 1_000_000_000 // M * M + M - 1_000_000  # a kline close time (..:59.999)
IDX = {n: i for i, n in enumerate(BAR_FEATURES)}
SCHEMA = SHORT  # warm-up 4 bars, standardised over 6, flow and vwap over 2


def random_bars(n: int, seed: int = 3, start: int = T0) -> BarColumns:
    """A random walk of 1-minute klines with consistent OHLC, volumes and counts."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, n)))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, 3e-4, (2, n))) * close
    volume = rng.gamma(2.0, 5.0, n) * (rng.random(n) > 0.1)  # some minutes do not trade
    return BarColumns(
        ts=start + M * np.arange(n, dtype=np.int64),
        open=open_,
        high=np.maximum(open_, close) + wick[0],
        low=np.minimum(open_, close) - wick[1],
        close=close,
        volume=volume,
        quote_volume=volume * close,
        taker_buy_volume=volume * rng.random(n),
        trades=(volume * 3).astype(np.int64),
    )


def test_values_of_single_bars_by_hand() -> None:
    eng = BarFeatureEngine(SCHEMA)
    a = eng.on_bar(T0, 100.0, 102.0, 98.0, 101.0, 10.0, 1010.0, 8.0, 20)
    b = eng.on_bar(T0 + M, 101.0, 101.0, 99.0, 99.5, 30.0, 3000.0, 3.0, 0)
    assert isinstance(a, BarSample) and isinstance(b, BarSample)
    assert a.raw[IDX["ret_bp"]] == pytest.approx(math.log(101.0 / 100.0) * 1e4)  # first: c / o
    assert b.raw[IDX["ret_bp"]] == pytest.approx(math.log(99.5 / 101.0) * 1e4)  # then c / c[-1]
    assert a.raw[IDX["range_bp"]] == pytest.approx(math.log(102.0 / 98.0) * 1e4)
    assert (a.raw[IDX["body"]], b.raw[IDX["body"]]) == (0.25, -0.75)
    assert a.raw[IDX["log_volume"]] == pytest.approx(math.log(11.0))
    assert (a.raw[IDX["log_trades"]], b.raw[IDX["log_trades"]]) == (pytest.approx(math.log(21)), 0)
    assert a.raw[IDX["taker_imb"]] == pytest.approx(0.6)  # (8 - 2) / 10
    assert b.raw[IDX["taker_imb"]] == pytest.approx((2 * 11.0 - 40.0) / 40.0)  # 2-bar window
    assert b.vwap == pytest.approx(4010.0 / 40.0)
    assert (a.open, a.high, a.low, a.close, a.volume) == (100.0, 102.0, 98.0, 101.0, 10.0)
    assert b.realised_vol_bp == b.raw[IDX["rv_bp"]] > 0.0


def test_flat_and_empty_bars_give_zeros_not_nan() -> None:
    eng = BarFeatureEngine(SCHEMA)
    out = [eng.on_bar(T0 + i * M, 5.0, 5.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0) for i in range(20)]
    raw = np.stack([s.raw for s in out])
    z = np.stack([s.z for s in out])
    assert np.isfinite(raw).all() and np.isfinite(z).all() and not raw.any() and not z.any()
    assert out[-1].vwap == 5.0 and eng.nonfinite == 0


def test_warm_up_rows_are_marked_and_z_is_zero_until_ready() -> None:
    samples = BarFeatureEngine(SCHEMA).run(random_bars(30))
    ready = np.array([s.ready for s in samples])
    assert SCHEMA.warmup_bars == 4
    assert not ready[:4].any() and ready[4:].all()
    assert all(not s.z.any() for s in samples[:4]) and all(
        np.isfinite(s.raw).all() for s in samples
    )
    assert np.abs(np.stack([s.z for s in samples[4:]])).sum() > 0.0


def test_z_is_the_causal_rolling_standardisation_of_previous_bars() -> None:
    samples = BarFeatureEngine(SCHEMA).run(random_bars(40))
    raw = np.stack([s.raw for s in samples])
    w = SCHEMA.standardise_window_bars
    for i in range(SCHEMA.warmup_bars, len(samples)):
        prev = raw[max(0, i - w) : i]
        want = (raw[i] - prev.mean(axis=0)) / np.maximum(prev.std(axis=0), SCHEMA.std_floor)
        np.testing.assert_allclose(samples[i].z, np.clip(want, -10, 10), rtol=1e-9, atol=1e-9)


def test_no_look_ahead_a_prefix_gives_the_same_samples() -> None:
    bars = random_bars(40)
    full = BarFeatureEngine(SCHEMA).run(bars)
    cut = BarColumns(*(np.asarray(c)[:25] for c in vars(bars).values()))
    head = BarFeatureEngine(SCHEMA).run(cut)
    for a, b in zip(head, full, strict=False):
        np.testing.assert_array_equal(a.raw, b.raw)
        np.testing.assert_array_equal(a.z, b.z)


def test_run_on_columns_equals_bar_by_bar_calls() -> None:
    bars = random_bars(30)
    online = BarFeatureEngine(SCHEMA)
    rows = zip(*(np.asarray(c).tolist() for c in vars(bars).values()), strict=True)
    one_by_one = [online.on_bar(*row) for row in rows]
    batch = BarFeatureEngine(SCHEMA).run(bars)
    assert [s.ts_ns for s in batch] == [s.ts_ns for s in one_by_one if s is not None]
    for a, b in zip(batch, one_by_one, strict=True):
        assert b is not None
        np.testing.assert_array_equal(a.raw, b.raw)
        np.testing.assert_array_equal(a.z, b.z)


def test_a_gap_between_bars_starts_a_new_session() -> None:
    eng = BarFeatureEngine(SCHEMA)  # max_gap_bars = 2: one missing minute is bridged
    first = eng.run(random_bars(10))
    bridged = eng.run(random_bars(1, seed=4, start=T0 + 11 * M))  # minute 10 is missing
    assert [s.session for s in first + bridged] == [0] * 11 and bridged[0].ready
    after = eng.run(random_bars(8, seed=5, start=T0 + 14 * M))  # minutes 12 and 13 missing
    assert [s.session for s in after] == [1] * 8 and eng.resets == 1
    assert [s.ready for s in after] == [False] * 4 + [True] * 4  # warm-up restarts
    fresh = BarFeatureEngine(SCHEMA).run(random_bars(8, seed=5, start=T0 + 14 * M))
    for a, b in zip(after, fresh, strict=True):  # nothing of the old session carries over
        np.testing.assert_array_equal(a.raw, b.raw)
        np.testing.assert_array_equal(a.z, b.z)


def test_stale_and_duplicate_bars_are_dropped_and_counted() -> None:
    eng = BarFeatureEngine(SCHEMA)
    assert eng.on_bar(T0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1) is not None
    assert eng.on_bar(T0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1) is None
    assert eng.on_bar(T0 - M, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1) is None
    assert eng.stale == 2 and eng.samples_emitted == 1


@pytest.mark.parametrize(
    ("bar", "field"),
    [
        ((0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1), "open"),
        ((1.0, 1.0, 1.0, math.nan, 1.0, 1.0, 0.5, 1), "close"),
        ((1.0, 0.9, 1.0, 1.0, 1.0, 1.0, 0.5, 1), "high"),
        ((1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 0.5, 1), "volume"),
        ((1.0, 1.0, 1.0, 1.0, 1.0, 1.0, math.nan, 1), "taker_buy_volume"),
        ((1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, -2), "trades"),
    ],
)
def test_impossible_bars_raise_naming_the_field(bar: tuple, field: str) -> None:
    eng = BarFeatureEngine(SCHEMA)
    with pytest.raises(BadInputError) as err:
        eng.on_bar(T0, *bar)
    assert err.value.field == field and str(T0) in str(err.value)
    assert eng.samples_emitted == 0 and eng.last_ts is None  # nothing half-applied


def test_the_engine_imports_numpy_only() -> None:
    """The node imports it: no Nautilus, Arrow or pandas behind ``training.features.bars``."""
    heavy = ("nautilus_trader", "pyarrow", "pandas", "ray", "xgboost", "node")
    assert heavy_imports("training.features.bars", heavy) == []
