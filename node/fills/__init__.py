"""Queue-aware fills for the backtest venue (issue 12): resting orders fill only after the
displayed size ahead of them has traded; takers walk the L2 book.

Nautilus 1.231's own ``queue_position`` option follows trades at the price but neither shrinks
the queue on cancels ahead nor fills on a trade through the price while size is still ahead,
and resets every queue to zero on a CLEAR or snapshot (a book gap puts every order first); so
the venue runs Nautilus's L2 matching with ``liquidity_consumption=True`` and this package's
fill model, whose queue rule is the loopback venue's (:mod:`node.venue.queue`)::

    from node.fills import FillOptions, venue_fill_config

    engine.add_venue(..., book_type=BookType.L2_MBP, **venue_fill_config(FillOptions("queue")))
    ...
    passive_fill_rate(engine.trader.generate_orders_report())  # before engine.dispose()

Modules: ``_config`` (:class:`FillOptions`, :func:`venue_fill_config`), ``_queue`` (the
simulation module and fill model), ``_stats`` (:func:`passive_fill_rate`), ``_probe`` (a
post-at-the-touch strategy that measures a fill model).
"""

from __future__ import annotations

from typing import Any

from node.fills._config import FILL_MODELS
from node.fills._config import FillOptions
from node.fills._config import venue_fill_config
from node.fills._stats import passive_fill_rate

__all__ = [
    "FILL_MODELS",
    "FillOptions",
    "PassiveProbe",
    "PassiveProbeConfig",
    "QueueFillModel",
    "QueueTracker",
    "passive_fill_rate",
    "venue_fill_config",
]


_LAZY = {
    "PassiveProbe": "_probe",
    "PassiveProbeConfig": "_probe",
    "QueueFillModel": "_queue",
    "QueueTracker": "_queue",
}


def __getattr__(name: str) -> Any:  # the Nautilus classes load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"node.fills.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'node.fills' has no attribute {name!r}")
