"""Shared fixtures: where the real Binance data lives, and test-wide environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault(
    "OPENBLAS_NUM_THREADS", "1"
)  # BLAS threads spin against each other on 2 cores

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real Binance recordings and public-data fixtures (read-only)."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(f"real data not found at {SHARED_DATA}: clone the repo beside shared/")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ws_dir(shared_data: Path) -> Path:
    """Raw Binance WebSocket recordings (``<recv_ns> <json>`` gzip lines)."""
    return shared_data / "binance-ws"


@pytest.fixture(scope="session")
def public_dir(shared_data: Path) -> Path:
    """Binance public-data fixtures (CSV / Parquet)."""
    return shared_data / "binance-public"


@pytest.fixture(scope="session")
def synth_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 3-hour synthetic BTCUSDT spot days (seed 1) with ground-truth regimes."""
    from training.data.sources.synth import SynthConfig
    from training.data.sources.synth import synth

    root = tmp_path_factory.mktemp("synth_catalog")
    synth(SynthConfig(days=3, seed=1, day_seconds=3 * 3600), root)
    return root
