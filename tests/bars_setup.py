"""The real ADABTC 1m klines (``../shared/data/binance-public``) in a catalog, for the bar-feature
tests offline (``tests/training/features/test_bars_*``) and in Nautilus (``tests/node``)."""

from __future__ import annotations

from pathlib import Path

from ops.quickstart import SMOKE_WINDOWS
from training.data.catalog import MarketCatalog
from training.data.sources.binance_public import import_binance
from training.features.bars import BarFeatureSchema
from training.features.bars import bar_schema

KLINE_FILES = ("ADABTC-1m-2021-11-27.csv", "ADABTC-1m-2021-11-28.csv")  # 10 + 11 bars

#: Windows short enough for the 10- and 11-bar real days to have ready rows (warm-up 4 bars).
SHORT = bar_schema(
    standardise_window_bars=6,
    min_periods_bars=4,
    rv_window_bars=3,
    autocorr_window_bars=4,
    flow_window_bars=2,
    vwap_window_bars=2,
)


#: The quickstart's smoke-test windows (1-bar lookbacks): 19 ready rows of the 21 real bars.
TINY = bar_schema(**SMOKE_WINDOWS)


def kline_catalog(public_dir: Path, root: Path) -> MarketCatalog:
    """Both real kline days imported with ``import_binance`` (``BinanceBar``s) into ``root``."""
    import_binance([public_dir / f for f in KLINE_FILES], root, name="klines", progress=False)
    return MarketCatalog(root)


def schemas() -> list[BarFeatureSchema]:
    """The schemas the parity tests run: short windows (ready rows) and the default."""
    return [SHORT, bar_schema()]
