"""Market-data sources, each a module turning its input into catalog partitions + a report.

``binance_ws`` (raw WebSocket recordings), ``binance_public`` (data.binance.vision files),
``download`` (fetching those files), ``tardis`` (Tardis.dev CSV), ``synth`` (a synthetic regime
market with ground-truth labels). They share ``_importer`` (catalog writes + report tallying).
Nothing is imported here: each source loads only when used.
"""

from __future__ import annotations

__all__ = ["binance_public", "binance_ws", "download", "synth", "tardis"]
