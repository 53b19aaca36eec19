"""Online EM that keeps its memory: guarded ``partial_fit`` children of a Gaussian HMM.

- :class:`SufficientStats` (:mod:`._stats`): the memory, per-sample expected statistics and
  the rows behind them; :func:`batch_stats` (E-step), :func:`stationary_distribution`.
- :class:`Reservoir` (:mod:`._reservoir`): training segments of every regime, stratified by
  filtered state, that the guard scores children on.
- :func:`partial_fit` (:mod:`._fit`): one Cappé-style update and its guard;
  :class:`OnlineMemory` is what a bundle stores (``online.npz``), :func:`training_memory` the
  memory a freshly trained model starts with.

Imports only numpy/scipy (the policy check takes the head as a callable).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.models.hmm import HMMParams
from training.models.online._fit import Actions
from training.models.online._fit import OnlineEMConfig
from training.models.online._fit import OnlineMemory
from training.models.online._fit import PartialFitResult
from training.models.online._fit import partial_fit
from training.models.online._reservoir import Reservoir
from training.models.online._reservoir import ReservoirConfig
from training.models.online._reservoir import ReservoirScore
from training.models.online._stats import SufficientStats
from training.models.online._stats import batch_stats
from training.models.online._stats import stationary_distribution

__all__ = [
    "Actions",
    "OnlineEMConfig",
    "OnlineMemory",
    "PartialFitResult",
    "Reservoir",
    "ReservoirConfig",
    "ReservoirScore",
    "SufficientStats",
    "batch_stats",
    "partial_fit",
    "stationary_distribution",
    "training_memory",
]


def training_memory(
    params: HMMParams,
    X: np.ndarray,
    lengths: Sequence[int] | None = None,
    config: ReservoirConfig | None = None,
) -> OnlineMemory:
    """The memory a model fitted on ``X`` (sequences ``lengths``) starts online EM with: its
    own statistics standing for all ``len(X)`` training rows, and a reservoir of them.

    >>> from training.models.hmm import sample_hmm
    >>> p = HMMParams(np.array([0.5, 0.5]), np.array([[0.95, 0.05], [0.05, 0.95]]),
    ...               np.array([[-2.0], [2.0]]), np.array([[1.0], [1.0]]), "diag")
    >>> X, _ = sample_hmm(p, 3000, seed=1)
    >>> m = training_memory(p, X)
    >>> m.stats.n_samples, m.reservoir.X.shape
    (3000, (32, 32, 1))
    """
    reservoir = Reservoir.build(params, X, lengths, config or ReservoirConfig())
    return OnlineMemory(SufficientStats.from_params(params, n_samples=len(X)), reservoir)
