"""The strategy's pure decision rules and the trade simulator that replays them.

:mod:`~training.simulation.execution` (prices, sizes, exits), :mod:`~training.simulation.rules`
(:func:`decide`: one sample's decision, the guardrails), :mod:`~training.simulation.simulator`
(a day of samples and model answers -> fills, round trips, net PnL after the cost model) and
:mod:`~training.simulation.stats` (round trips, bootstrap intervals).
"""

from __future__ import annotations
