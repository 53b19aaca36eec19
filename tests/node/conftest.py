"""Node test fixtures: one synthetic catalog + trained model shared by every node test module,
and one Serve of it for the tests that ask a model over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serve_setup import NEVER_ADAPTS
from tests.serve_setup import ServeChild
from tests.strategy_setup import make_synth_setup
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog


@pytest.fixture(scope="session")
def synth_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketCatalog, Registry]:
    """Three 30-minute synthetic days; ``candidate`` is trained on the first two."""
    return make_synth_setup(tmp_path_factory.mktemp("node_synth"))


@pytest.fixture(scope="package")
def node_serve(synth_setup: tuple[MarketCatalog, Registry]) -> Iterator[ServeChild]:
    """The test model's Serve (drift out of reach: never ``adapting``), shared by the live-node
    and backtest tests; started at first use, waited for by ``.url``."""
    serve = ServeChild(synth_setup[1].root, NEVER_ADAPTS)
    try:
        yield serve
    finally:
        serve.stop()
