"""Judging and aligning fitted HMMs: BIC, posterior entropy, canonical state order, matching.

Numpy/scipy only (Hungarian assignment from ``scipy.optimize``).

>>> posterior_entropy(np.array([[1.0, 0.0], [0.5, 0.5]]))
0.5
>>> regime_accuracy(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), 2)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from training.errors import BadInputError
from training.models.hmm.filter import log_likelihood
from training.models.hmm.params import HMMParams
from training.models.hmm.params import n_free_params

__all__ = [
    "align_states",
    "best_label_alignment",
    "bic",
    "canonical_order",
    "canonicalize",
    "posterior_entropy",
    "regime_accuracy",
]


def bic(params: HMMParams, X: np.ndarray, lengths: Sequence[int] | None = None) -> float:
    """Bayesian information criterion ``-2 log L + p log n`` (lower is better)."""
    n = np.asarray(X).shape[0]
    p = n_free_params(params.n_states, params.n_features, params.covariance_type)
    return -2.0 * log_likelihood(params, X, lengths) + p * math.log(n)


def posterior_entropy(posteriors: np.ndarray) -> float:
    """Mean entropy of posterior rows, normalised by ``log K`` to 0 (certain) .. 1 (uniform).

    Not the acceptance check's ``state_entropy`` (bits of the filtered-state histogram).

    >>> posterior_entropy(np.array([[1.0, 0.0], [0.5, 0.5]]))
    0.5
    """
    p = np.atleast_2d(np.asarray(posteriors, dtype=np.float64))
    k = p.shape[1]
    if k < 2:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(h.mean() / math.log(k))


def canonicalize(params: HMMParams, order_feature: int | None = None) -> HMMParams:
    """States sorted by ascending ``means[:, order_feature]`` (or by mean norm, ties by the first
    feature, when ``None``) so that state ids mean the same thing across fits and versions."""
    return params.permute(canonical_order(params, order_feature))


def canonical_order(params: HMMParams, order_feature: int | None = None) -> np.ndarray:
    """The permutation :func:`canonicalize` applies."""
    m = params.means
    if order_feature is not None:
        if not (0 <= order_feature < params.n_features):
            raise BadInputError(
                f"order_feature: {order_feature} out of range 0..{params.n_features - 1}",
                field="order_feature",
            )
        return np.argsort(m[:, order_feature], kind="stable")
    return np.lexsort((m[:, 0], np.linalg.norm(m, axis=1)))


def align_states(reference: HMMParams, params: HMMParams) -> np.ndarray:
    """Permutation ``perm`` such that ``params.permute(perm)`` state ``i`` matches ``reference``
    state ``i`` (Hungarian assignment on squared distances between means)."""
    if reference.means.shape != params.means.shape:
        raise BadInputError(
            f"align_states: means shapes differ: {reference.means.shape} vs {params.means.shape}",
            field="params",
        )
    cost = ((reference.means[:, None, :] - params.means[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(reference.n_states, dtype=np.intp)
    perm[rows] = cols
    return perm


def best_label_alignment(
    true_states: np.ndarray, pred_states: np.ndarray, k: int
) -> tuple[np.ndarray, float]:
    """Mapping ``pred -> true`` label maximising agreement (Hungarian on the confusion matrix),
    and the resulting accuracy. For scoring against ground-truth regimes.

    >>> best_label_alignment(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), 2)[1]
    1.0
    """
    t = np.asarray(true_states, dtype=np.int64)
    p = np.asarray(pred_states, dtype=np.int64)
    kt = max(k, int(t.max()) + 1)
    conf = np.zeros((k, kt))
    np.add.at(conf, (p, t), 1.0)
    rows, cols = linear_sum_assignment(-conf)
    mapping = np.full(k, -1, dtype=np.int64)
    mapping[rows] = cols
    return mapping, float(conf[rows, cols].sum() / max(len(t), 1))


def regime_accuracy(true_states: np.ndarray, pred_states: np.ndarray, k: int) -> float:
    """Share of samples whose HMM state maps to the true regime, each of the ``k`` states mapped
    to the regime it overlaps most (many-to-one: with K above the number of regimes, e.g. a
    trend split into up and down states, both map to "trending"). Equals
    :func:`best_label_alignment` when K equals the number of regimes and states split cleanly.

    >>> regime_accuracy(np.array([0, 0, 1, 1, 1]), np.array([2, 2, 0, 1, 1]), 3)
    1.0
    """
    t = np.asarray(true_states, dtype=np.int64)
    p = np.asarray(pred_states, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1 or len(t) == 0:
        raise BadInputError(
            f"true_states {t.shape} and pred_states {p.shape}: need equal non-empty 1-D",
            field="pred_states",
        )
    conf = np.zeros((k, int(t.max()) + 1))
    np.add.at(conf, (p, t), 1.0)
    return float(conf.max(axis=1).sum() / max(len(t), 1))
