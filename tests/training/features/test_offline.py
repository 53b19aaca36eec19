"""Offline extraction: catalog symbol-day -> feature Parquet (synthetic and real Binance data)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from training.cli import main as nhmm
from training.data.catalog import MarketCatalog
from training.data.columns import DeltaColumns
from training.data.columns import TradeColumns
from training.data.sources.binance_ws import import_ws
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import load_labels
from training.data.sources.synth import synth
from training.features import SAMPLE_SCALARS
from training.features import FeatureEngine
from training.features import samples_to_columns
from training.features import schema_for
from training.features.offline import extract_features
from training.features.offline import extract_many
from training.features.offline import feature_path
from training.features.offline import raw_columns
from training.features.offline import read_features
from training.features.offline import write_table
from training.features.offline import z_columns

SPOT_0808 = datetime.date(2024, 8, 8)
SPOT_0809 = datetime.date(2024, 8, 9)


@pytest.fixture(scope="module")
def synth_cat(tmp_path_factory: pytest.TempPathFactory) -> MarketCatalog:
    """One hour of the synthetic regime market (all three regimes present for seed 3)."""
    root = tmp_path_factory.mktemp("synth")
    synth(SynthConfig(day_seconds=3600, seed=3), root)
    return MarketCatalog(root)


@pytest.fixture(scope="module")
def spot_cat(tmp_path_factory: pytest.TempPathFactory, ws_dir: Path) -> MarketCatalog:
    """The real spot BTCUSDT recording (two files, one stream over UTC midnight)."""
    root = tmp_path_factory.mktemp("spot")
    import_ws([ws_dir / "spot_btcusdt_20240808.gz", ws_dir / "spot_btcusdt_20240809.gz"], root)
    return MarketCatalog(root)


def test_table_columns_metadata_and_ground_truth_regime(
    synth_cat: MarketCatalog, tmp_path: Path
) -> None:
    [sd] = synth_cat.symbol_days()
    schema = schema_for("spot")
    table = extract_features(synth_cat, "BTCUSDT", sd.day)
    assert table.column_names == [
        "ts",
        *z_columns(schema),
        *raw_columns(schema),
        *SAMPLE_SCALARS,
        "regime",
        "next_sell_low",  # issue 11: the trades a resting order could meet, for the simulator
        "next_buy_high",
    ]
    ts = table["ts"].to_numpy()
    assert len(ts) >= 3599 and (np.diff(ts) == 1_000_000_000).all()
    assert (ts % 1_000_000_000 == 0).all()
    labels = load_labels(synth_cat, "BTCUSDT", sd.day)
    np.testing.assert_array_equal(table["regime"].to_numpy(), labels.regime_at(ts - 1))
    ready = table["ready"].to_numpy()
    assert not ready[:600].any() and ready[601:].all()  # 10 min warm-up by default
    for name in table.column_names:
        col = table[name].to_numpy()
        if col.dtype.kind == "f" and not name.startswith("next_"):  # next_*: NaN = no trade
            assert np.isfinite(col).all(), name
    low, high = table["next_sell_low"].to_numpy(), table["next_buy_high"].to_numpy()
    assert np.isfinite(low).mean() > 0.5 and np.isfinite(high).mean() > 0.5
    path = write_table(table, feature_path(tmp_path, sd))
    assert path == tmp_path / "features" / "BTCUSDT.BINANCE" / f"{sd.day.isoformat()}.parquet"
    back_schema, back = read_features(path)
    assert back_schema == schema
    for name in table.column_names:  # NaN-aware (next_* are NaN where no trade came)
        np.testing.assert_array_equal(back[name].to_numpy(), table[name].to_numpy(), name)
    assert not list(path.parent.glob(".*tmp"))


def test_features_separate_the_synthetic_regimes(synth_cat: MarketCatalog) -> None:
    [sd] = synth_cat.symbol_days()
    df = extract_features(synth_cat, "BTCUSDT", sd.day).to_pandas()
    df = df[df["ready"]]
    names = load_labels(synth_cat, "BTCUSDT", sd.day).names
    by = df.groupby(df["regime"].map(dict(enumerate(names)))).mean(numeric_only=True)
    assert set(by.index) == {"calm", "trending", "volatile"}
    assert by.loc["volatile", "z_rv_bp"] > by.loc["calm", "z_rv_bp"] + 1.0
    assert by.loc["volatile", "z_spread_bp"] > by.loc["calm", "z_spread_bp"] + 1.0
    assert by.loc["trending", "z_autocorr_1"] > by.loc["calm", "z_autocorr_1"]


def test_schema_must_fit_the_instrument(synth_cat: MarketCatalog) -> None:
    [sd] = synth_cat.symbol_days()
    with pytest.raises(ValueError, match=r"schema\.market"):
        extract_features(synth_cat, "BTCUSDT", sd.day, schema_for("perp"))
    with pytest.raises(KeyError, match="2020-01-01"):
        extract_features(synth_cat, "BTCUSDT", datetime.date(2020, 1, 1))


def test_continuous_session_spans_midnight_on_the_real_stream(spot_cat: MarketCatalog) -> None:
    schema = schema_for("spot", min_periods_s=60.0)
    cont = extract_many(spot_cat, "BTCUSDT", schema=schema, progress=False)
    fresh = extract_many(spot_cat, "BTCUSDT", schema=schema, continuous=False, progress=False)
    (d1, t1), (d2, t2) = sorted(cont.items())
    assert (d1.day, d2.day) == (SPOT_0808, SPOT_0809)
    ext = ["next_sell_low", "next_buy_high"]  # NaN where no trade: compared NaN-aware
    assert t1.drop_columns(ext).equals(fresh[d1].drop_columns(ext))
    for c in ext:
        np.testing.assert_array_equal(t1[c].to_numpy(), fresh[d1][c].to_numpy())
    # day 2 continues the session (one gap-free stream): ready from its first sample
    assert t2["ready"].to_numpy().all() and (t2["session"].to_numpy() == 0).all()
    assert not fresh[d2]["ready"].to_numpy()[:60].any()
    assert t2["ts"].to_numpy()[0] == 1_723_161_600_000_000_000  # the midnight sample
    assert t2.num_rows == fresh[d2].num_rows + 1  # ... which a fresh day-2 engine cannot emit
    np.testing.assert_array_equal(t2["raw_spread_bp"].to_numpy()[1:], fresh[d2]["raw_spread_bp"])


def test_future_events_change_no_past_feature_on_real_data(spot_cat: MarketCatalog) -> None:
    ev = spot_cat.load("BTCUSDT", SPOT_0808)
    schema = schema_for("spot", min_periods_s=60.0)
    base = samples_to_columns(FeatureEngine(schema).run(ev.deltas, ev.trades), 10)
    cut = int(base["ts"][200])
    d, t = ev.deltas, ev.trades
    d2 = DeltaColumns(**{n: getattr(d, n).copy() for n in d.names()})
    t2 = TradeColumns(**{n: getattr(t, n).copy() for n in t.names()})
    late_d, late_t = d.ts_event >= cut, t.ts_event >= cut
    assert late_d.sum() > 1000 and late_t.sum() > 100
    d2.size[late_d] *= 3.0
    t2.aggressor[late_t] = 3 - t2.aggressor[late_t]
    t2.price[late_t] += 50.0
    pert = samples_to_columns(FeatureEngine(schema).run(d2, t2), 10)
    upto = base["ts"] <= cut
    n = int(upto.sum())
    assert n == 201
    for k in base:
        np.testing.assert_array_equal(base[k][:n], pert[k][:n], err_msg=k)
    assert not np.array_equal(base["raw"][n:], pert["raw"][n:])


def test_cli_extract_writes_one_parquet_per_day(spot_cat: MarketCatalog, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["features", "extract", "--catalog", str(spot_cat.root), "--symbol", "BTCUSDT"]
    args.append("--no-progress")
    result = runner.invoke(nhmm, [*args, "--days", "2024-08-09", "--out", str(out)])
    assert result.exit_code == 0, result.output
    path = out / "features" / "BTCUSDT.BINANCE" / "2024-08-09.parquet"
    assert result.stdout.strip().splitlines()[-1] == str(path)
    schema, table = read_features(path)
    assert schema == schema_for("spot") and table.num_rows > 290
    result = runner.invoke(
        nhmm, [*args, "--out", str(out), "--window", "3600", "--min-periods", "120"]
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 2
    schema, _ = read_features(out / "features" / "BTCUSDT.BINANCE" / "2024-08-08.parquet")
    assert (schema.standardise_window_s, schema.min_periods_s) == (3600.0, 120.0)
    bad = runner.invoke(nhmm, [*args, "--days", "2024-13-01", "--out", str(out)])
    assert bad.exit_code != 0 and "2024-13-01" in bad.output
    missing = runner.invoke(nhmm, [*args, "--days", "2024-08-10", "--out", str(out)])
    assert missing.exit_code != 0 and "2024-08-10" in missing.output
