"""Fixtures for the ops tests: the hand-built RUN_DIR's spec (:mod:`tests.run_dir_setup`), the
model trained on synthetic days that the real backtests use, and a RUN_DIR written by a real
``run_backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.run_dir_setup import make_spec
from tests.strategy_setup import LOOSE
from tests.strategy_setup import make_synth_setup
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog


@pytest.fixture
def good_spec() -> dict[str, Any]:
    return make_spec()


@pytest.fixture(scope="session")
def synth_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, Registry]:
    """Three 30-minute synthetic BTCUSDT spot days; ``candidate`` is trained on the first two
    (the third is left for a backtest)."""
    return make_synth_setup(tmp_path_factory.mktemp("ops_synth"))


@pytest.fixture(scope="session")
def backtest_run(
    tmp_path_factory: pytest.TempPathFactory, synth_model: tuple[MarketCatalog, Registry]
) -> Path:
    """A RUN_DIR from a real ``run_backtest`` on the third synthetic day, trading enabled."""
    from node.backtest import VenueOptions
    from node.backtest import run_backtest

    catalog, registry = synth_model
    day = catalog.symbol_days("BTCUSDT")[-1].day
    cfg = msgspec.structs.replace(LOOSE, trading_enabled=True)
    venue = VenueOptions(latency_ms=10.0)
    out = tmp_path_factory.mktemp("ops_backtest") / "run"
    run_backtest(catalog, "BTCUSDT", [day], "candidate", registry, out, cfg, venue)
    return out
