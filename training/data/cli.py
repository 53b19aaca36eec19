"""``nhmm data``: every way market data enters the catalog."""

from __future__ import annotations

import click

from training.cli import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "import-ws": ("training.data.binance_ws:cli", "Raw Binance WebSocket recordings."),
        "import-binance": ("training.data.binance_public:cli", "Binance public-data files."),
        "download": ("training.data.download:cli", "Download Binance public-data daily zips."),
        "import-tardis": ("training.data.tardis:cli", "Tardis incremental_book_L2 / trades CSV."),
        "synth": ("training.data.synth:cli", "Generate a synthetic regime market."),
    },
)
def data() -> None:
    """Import market data into a Nautilus Parquet catalog (one partition per symbol-day)."""
