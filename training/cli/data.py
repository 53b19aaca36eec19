"""``nhmm data``: every way market data enters the catalog."""

from __future__ import annotations

import importlib

import click

_COMMANDS = {
    "import-ws": "training.data.sources.binance_ws:cli",
    "import-binance": "training.data.sources.binance_public:cli",
    "download": "training.data.sources.download:cli",
    "import-tardis": "training.data.sources.tardis:cli",
    "synth": "training.data.sources.synth:cli",
}


class _Sources(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_Sources)
def data() -> None:
    """Import market data into a Nautilus Parquet catalog (one partition per symbol-day)."""
