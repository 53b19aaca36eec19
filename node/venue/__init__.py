"""The loopback Binance venue: a fake Binance at the edge, for the REAL Nautilus Binance adapter.

One aiohttp server on 127.0.0.1 speaks Binance's spot or USD-M REST, market-stream, WebSocket-API
and user-stream protocols, replays a WebSocket recording (``nhmm data import-ws`` format) as the
market, and matches the account's orders against it with the FIFO queue rule of
:mod:`node.venue.queue`::

    from node.venue import ApiKey, VenueConfig, binance_configs, generate_ed25519, running

    venue_key, pem = generate_ed25519()
    with running(VenueConfig(recording=(FILE,), api_key=venue_key, speed=10)) as venue:
        data, exec_ = binance_configs(venue.urls, "spot", "BTCUSDT", api_key=venue_key.key, api_secret=pem)
        ...  # a TradingNode with BinanceLiveDataClientFactory / BinanceLiveExecClientFactory

Modules: ``queue`` (the queue rule, pure; reusable by a backtest fill model), ``recording``
(load and sync a recording), ``auth`` (keys, signature checks), ``config``, ``venue``
(``LoopbackVenue``, ``VenueThread``, ``running``), ``adapter`` (client configs). Names load
lazily, so ``import node.venue.queue`` stays free of aiohttp and Nautilus.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ApiKey",
    "LoopbackVenue",
    "QueueBook",
    "QueueFill",
    "Recording",
    "VenueConfig",
    "VenueThread",
    "VenueUrls",
    "binance_configs",
    "generate_ed25519",
    "instrument_id",
    "load_recording",
    "running",
]

_HOME = {
    "ApiKey": "auth",
    "generate_ed25519": "auth",
    "QueueBook": "queue",
    "QueueFill": "queue",
    "Recording": "recording",
    "load_recording": "recording",
    "VenueConfig": "config",
    "LoopbackVenue": "venue",
    "VenueThread": "venue",
    "VenueUrls": "venue",
    "running": "venue",
    "binance_configs": "adapter",
    "instrument_id": "adapter",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'node.venue' has no attribute {name!r}")
    return getattr(importlib.import_module(f"node.venue.{_HOME[name]}"), name)
