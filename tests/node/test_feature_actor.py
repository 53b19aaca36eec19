"""Parity: offline features (catalog -> engine.run) == the FeatureActor in a real BacktestEngine."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from node.feature_actor import backtest_features
from tests.feature_streams import random_stream
from training.cli.data import import_ws as ws_cli
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import synth
from training.features import FeatureSample
from training.features import FeatureSchema
from training.features import schema_for
from training.features.offline import extract_features
from training.features.offline import features_table
from training.features.offline import raw_columns
from training.features.offline import z_columns


def backtest_samples(catalog: MarketCatalog, sd: SymbolDay, schema: FeatureSchema) -> list:
    samples, stats = backtest_features(catalog, sd, schema)
    assert stats["events"] > 0
    return samples


def assert_parity(offline: pa.Table, online: list[FeatureSample], schema: FeatureSchema) -> None:
    on = features_table(online, schema)
    assert on.num_rows == offline.num_rows > 0
    np.testing.assert_array_equal(on["ts"].to_numpy(), offline["ts"].to_numpy())
    worst = 0.0
    for name in [
        *z_columns(schema),
        *raw_columns(schema),
        "mid",
        "spread_bp",
        "microprice",
        "vwap",
        "realised_vol_bp",
        "best_bid",
        "best_ask",
    ]:
        diff = np.abs(on[name].to_numpy() - offline[name].to_numpy())
        worst = max(worst, float(diff.max()))
    for name in ("ready", "book_ok", "session"):
        np.testing.assert_array_equal(on[name].to_numpy(), offline[name].to_numpy(), name)
    assert worst <= 1e-9, worst


@pytest.fixture(scope="module")
def random_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, SymbolDay]:
    """A random L2 stream with receive jitter (ts_init order != ts_event order), CLEARs and
    trades, written through MarketCatalog into a real Nautilus catalog."""
    d, t = random_stream(31, seconds=400, jitter_ns=400_000_000)
    cat = MarketCatalog(tmp_path_factory.mktemp("random_catalog"))
    [sd] = cat.write(
        TestInstrumentProvider.btcusdt_binance(), MarketEvents(d, t, QuoteColumns.empty())
    )
    return cat, sd


def test_parity_on_random_stream_with_receive_jitter(
    random_catalog: tuple[MarketCatalog, SymbolDay],
) -> None:
    cat, sd = random_catalog
    schema = schema_for("spot", min_periods_s=120.0)
    offline = extract_features(cat, sd.instrument_id, sd.day, schema)
    online = backtest_samples(cat, sd, schema)
    assert offline.num_rows > 350
    assert offline["ready"].to_numpy().sum() > 200
    assert_parity(offline, online, schema)


@pytest.fixture(scope="session")
def real_catalog(tmp_path_factory: pytest.TempPathFactory, ws_dir: Path) -> MarketCatalog:
    """The real Binance recordings (spot: two files, one stream; USD-M perp) imported with
    ``nhmm data import-ws`` into a temporary catalog."""
    root = tmp_path_factory.mktemp("real_catalog")
    runner = CliRunner()
    for files in (
        ["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"],
        ["usdm_btcusdt_20240808.gz"],
    ):
        args = [str(ws_dir / f) for f in files] + ["--out", str(root), "--no-progress"]
        result = runner.invoke(ws_cli, args)
        assert result.exit_code == 0, result.output
    return MarketCatalog(root)


@pytest.mark.parametrize(
    ("symbol", "day"),
    [
        ("BTCUSDT", datetime.date(2024, 8, 8)),
        ("BTCUSDT", datetime.date(2024, 8, 9)),
        ("BTCUSDT-PERP", datetime.date(2024, 8, 8)),
    ],
)
def test_parity_on_real_binance_recordings(
    real_catalog: MarketCatalog, symbol: str, day: datetime.date
) -> None:
    sd = next(sd for sd in real_catalog.symbol_days(symbol) if sd.day == day)
    market = "perp" if symbol.endswith("-PERP") else "spot"
    schema = schema_for(market, min_periods_s=60.0)
    offline = extract_features(real_catalog, symbol, day, schema)
    online = backtest_samples(real_catalog, sd, schema)
    assert offline.num_rows > 290  # ~5-6 minutes of 1 s samples
    assert offline["ready"].to_numpy().sum() > 200
    assert offline["book_ok"].to_numpy().all()
    # informative on real data: spread, imbalance and trade signs move
    for name in ("raw_imbalance", "raw_trade_sign_imb", "raw_micro_bp", "raw_ret_bp"):
        assert np.std(offline[name].to_numpy()) > 0, name
    assert_parity(offline, online, schema)


@pytest.fixture(scope="module")
def synth_catalog(tmp_path_factory: pytest.TempPathFactory) -> MarketCatalog:
    """A short synthetic regime day (15 min) from ``training.data.sources.synth``."""
    root = tmp_path_factory.mktemp("synth_catalog")
    synth(SynthConfig(day_seconds=900, seed=5), root)
    return MarketCatalog(root)


def test_parity_on_a_synthetic_day(synth_catalog: MarketCatalog) -> None:
    [sd] = synth_catalog.symbol_days("BTCUSDT")
    schema = schema_for("spot", min_periods_s=120.0)
    offline = extract_features(synth_catalog, "BTCUSDT", sd.day, schema)
    online = backtest_samples(synth_catalog, sd, schema)
    assert offline.num_rows >= 895
    assert len(set(offline["regime"].to_numpy().tolist())) >= 2
    assert_parity(offline, online, schema)


def test_delta_decoding_is_bit_identical_to_as_double() -> None:
    """The C-struct decoder (its layout probe found every field) and its int128 -> float path
    give exactly ``as_double()``; rows it cannot prove exact go through ``decode_fixed``."""
    from nautilus_trader.model.data import BookOrder
    from nautilus_trader.model.data import OrderBookDelta
    from nautilus_trader.model.enums import BookAction
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price
    from nautilus_trader.model.objects import Quantity

    from node.feature_actor import _LAYOUT
    from node.feature_actor import _decode_fixed

    assert _LAYOUT is not None
    rng = np.random.default_rng(3)
    iid = InstrumentId.from_str("BTCUSDT.BINANCE")
    deltas = []
    for i in range(2000):
        p_prec, q_prec = int(rng.integers(0, 9)), int(rng.integers(0, 9))
        price = Price(round(float(rng.uniform(0.0, 10.0 ** rng.integers(0, 8))), p_prec), p_prec)
        size = Quantity(round(float(rng.uniform(1e-6, 1e4)), q_prec) or 1.0, q_prec)
        action = BookAction.CLEAR if i == 7 else BookAction(int(rng.integers(1, 4)))
        side = OrderSide(int(rng.integers(1, 3)))
        deltas.append(OrderBookDelta(iid, action, BookOrder(side, price, size, 0), 0, i, i, i))
    actions, sides, prices, sizes = _LAYOUT.decode(deltas)
    assert actions == [int(d.action) for d in deltas]
    assert sides == [int(d.order.side) for d in deltas]
    assert prices == [d.order.price.as_double() for d in deltas]
    assert sizes == [d.order.size.as_double() for d in deltas]

    odd = Price.from_raw(123456789123456789123, 16)  # not units * 10**k with units < 2**53
    rows = [p.raw.to_bytes(16, "little") + bytes([p.precision]) for p in (Price(1.5, 1), odd)]
    fixed = np.frombuffer(b"".join(rows), np.uint8).reshape(2, 17)
    assert _decode_fixed(fixed).tolist() == [1.5, odd.as_double()]
