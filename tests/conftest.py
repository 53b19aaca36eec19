"""Shared fixtures: where the real Binance data lives, and test-wide environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

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
