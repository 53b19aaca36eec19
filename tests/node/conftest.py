"""Node test fixtures: one synthetic catalog + trained model shared by every node test module."""

from __future__ import annotations

import pytest

from tests.strategy_setup import make_synth_setup
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog


@pytest.fixture(scope="session")
def synth_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, Registry]:
    """Three 30-minute synthetic days; ``candidate`` is trained on the first two."""
    return make_synth_setup(tmp_path_factory.mktemp("node_synth"))
