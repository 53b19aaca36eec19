"""The paper / live node: ``python node/run.py`` / ``nhmm node run``.

A Nautilus ``TradingNode`` with Binance's data and exec clients for one instrument (or, with
``--replay``, the loopback venue of :mod:`node.venue` replaying a recording), reconciliation on,
:class:`~node.strategy.PolicyHMMStrategy` asking the model in process or over Serve, an observer
feeding :mod:`node.metrics` and guarding the book, and a RUN_DIR written like a backtest's.

Modules: ``config`` (:class:`LiveConfig`), ``safety`` (keys, the ``--live`` checks),
``builder`` (client configs, the node, the risk limits), ``observer`` (metrics, book guard),
``run_out`` (the RUN_DIR), ``runner`` (``run_live``), ``parity`` (replay vs backtest), ``cli``
(the commands, light at import).
Nothing is re-exported here, so ``import node.live`` stays free of Nautilus.
"""

from __future__ import annotations

__all__: list[str] = []  # import from the modules: node.live.runner.run_live, node.live.config...
