"""Venue fixtures: the real recordings loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.venue.recording import Recording
from node.venue.recording import load_recording

SPOT = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
USDM = ("usdm_btcusdt_20240808.gz",)


@pytest.fixture(scope="session")
def spot_recording(ws_dir: Path) -> Recording:
    return load_recording([ws_dir / f for f in SPOT])


@pytest.fixture(scope="session")
def usdm_recording(ws_dir: Path) -> Recording:
    return load_recording([ws_dir / f for f in USDM])
