"""The online-EM state: a Gaussian HMM's expected sufficient statistics and the samples behind
them, the E-step that computes them on a batch, and the M-step back to parameters.

Statistics are per-sample normalised (``post`` sums to 1), so blending the memory with a batch
is ``S <- (1 - g) S + g s``; ``n_samples`` counts the rows the memory has seen (the training rows
first), which is what the step size decays with. Numpy only.

>>> from training.models.hmm import HMMParams
>>> p = HMMParams(np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]]),
...               np.array([[0.0], [2.0]]), np.array([[1.0], [0.5]]), "diag")
>>> s = SufficientStats.from_params(p, n_samples=1000)
>>> s.to_params(startprob_floor=0.0).equals(p, atol=1e-12), s.n_samples
(True, 1000)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.models.hmm import DegenerateModelError
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMParams
from training.models.hmm import floor_covars
from training.models.hmm.params import require_arrays

__all__ = ["SufficientStats", "batch_stats", "stationary_distribution"]


@dataclass(frozen=True, eq=False)
class SufficientStats:
    """Per-sample-normalised expected statistics of a Gaussian HMM (the online EM state).

    ``obsobs`` is ``E[gamma x x^T]`` ``(K, D, D)`` for full covariances, ``E[gamma x^2]``
    ``(K, D)`` for diag. ``n_samples`` is how many rows the memory has seen (training rows
    included), ``n_updates`` how many online updates were blended in.
    """

    start: np.ndarray
    trans: np.ndarray
    post: np.ndarray
    obs: np.ndarray
    obsobs: np.ndarray
    covariance_type: str = "full"
    n_updates: int = 0
    n_samples: int = 0

    @property
    def n_states(self) -> int:
        return int(self.post.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.obs.shape[1])

    @classmethod
    def from_params(cls, params: HMMParams, n_samples: int = 0) -> SufficientStats:
        """The statistics whose M-step gives back ``params`` (weights: stationary occupancy),
        standing for ``n_samples`` rows (e.g. the training rows ``params`` were fitted on)."""
        pi = stationary_distribution(params.transmat)
        mu = params.means
        if params.covariance_type == "full":
            second = params.covars + mu[:, :, None] * mu[:, None, :]
            obsobs = pi[:, None, None] * second
        else:
            obsobs = pi[:, None] * (params.covars + mu * mu)
        return cls(
            start=params.startprob.copy(),
            trans=pi[:, None] * params.transmat,
            post=pi.copy(),
            obs=pi[:, None] * mu,
            obsobs=obsobs,
            covariance_type=params.covariance_type,
            n_samples=int(n_samples),
        )

    def blend(self, other: SufficientStats, g: float, n_samples: int) -> SufficientStats:
        """``(1 - g) * self + g * other``: one more update, ``n_samples`` more rows seen."""
        return SufficientStats(
            start=(1 - g) * self.start + g * other.start,
            trans=(1 - g) * self.trans + g * other.trans,
            post=(1 - g) * self.post + g * other.post,
            obs=(1 - g) * self.obs + g * other.obs,
            obsobs=(1 - g) * self.obsobs + g * other.obsobs,
            covariance_type=self.covariance_type,
            n_updates=self.n_updates + 1,
            n_samples=self.n_samples + n_samples,
        )

    def to_params(
        self, covar_floor: float = 1e-4, startprob_floor: float = 1e-6, min_state_mass: float = 1e-8
    ) -> HMMParams:
        """M-step; raises :class:`DegenerateModelError` for an empty state or a zero
        transition row."""
        empty = np.flatnonzero(self.post < min_state_mass * self.post.sum())
        if empty.size:
            raise DegenerateModelError(f"state {int(empty[0])} has no posterior mass")
        rows = self.trans.sum(axis=1)
        zero = np.flatnonzero(rows <= 0)
        if zero.size:
            raise DegenerateModelError(f"transmat: row {int(zero[0])} has no transitions")
        start = np.maximum(self.start, 0) + startprob_floor
        means = self.obs / self.post[:, None]
        if self.covariance_type == "full":
            cov = self.obsobs / self.post[:, None, None] - means[:, :, None] * means[:, None, :]
            covars = floor_covars(cov, covar_floor)
        else:
            covars = np.maximum(self.obsobs / self.post[:, None] - means * means, covar_floor)
        return HMMParams(
            startprob=start / start.sum(),
            transmat=self.trans / rows[:, None],
            means=means,
            covars=covars,
            covariance_type=self.covariance_type,  # type: ignore[arg-type]
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickle); inverse of :meth:`from_arrays`."""
        return {
            "start": self.start.copy(),
            "trans": self.trans.copy(),
            "post": self.post.copy(),
            "obs": self.obs.copy(),
            "obsobs": self.obsobs.copy(),
            "covariance_type": np.array(self.covariance_type),
            "n_updates": np.array(self.n_updates, dtype=np.int64),
            "n_samples": np.array(self.n_samples, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, Any]) -> SufficientStats:
        names = ("start", "trans", "post", "obs", "obsobs", "covariance_type")
        require_arrays(d, names, "sufficient statistics arrays")
        return cls(
            start=np.asarray(d["start"], dtype=np.float64),
            trans=np.asarray(d["trans"], dtype=np.float64),
            post=np.asarray(d["post"], dtype=np.float64),
            obs=np.asarray(d["obs"], dtype=np.float64),
            obsobs=np.asarray(d["obsobs"], dtype=np.float64),
            covariance_type=str(np.asarray(d["covariance_type"]).item()),
            n_updates=int(np.asarray(d.get("n_updates", 0))),
            n_samples=int(np.asarray(d.get("n_samples", 0))),
        )


def stationary_distribution(transmat: np.ndarray) -> np.ndarray:
    """Left eigenvector of the transition matrix for eigenvalue 1, normalised to sum 1.

    >>> stationary_distribution(np.array([[0.9, 0.1], [0.2, 0.8]])).round(4).tolist()
    [0.6667, 0.3333]
    """
    k = transmat.shape[0]
    a = np.vstack([transmat.T - np.eye(k), np.ones((1, k))])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def batch_stats(params: HMMParams, X: np.ndarray) -> tuple[SufficientStats, float]:
    """Expected statistics of ``X`` under ``params`` (scaled forward-backward; one sequence
    starting from ``startprob``) and ``log p(X)``. Training-side only: it smooths."""
    f = ForwardFilter(params)
    log_b = f.log_emission(X)
    n, k = log_b.shape
    m = log_b.max(axis=1)
    b = np.exp(log_b - m[:, None])
    T = params.transmat
    alpha = np.empty((n, k))
    c = np.empty(n)
    a = params.startprob * b[0]
    for t in range(n):
        if t:
            a = (alpha[t - 1] @ T) * b[t]
        s = a.sum()
        if not s > 0:
            raise FloatingPointError(f"forward pass: zero likelihood at sample {t}")
        c[t] = s
        alpha[t] = a / s
    beta = np.empty((n, k))
    beta[-1] = 1.0
    for t in range(n - 2, -1, -1):
        beta[t] = T @ (b[t + 1] * beta[t + 1]) / c[t + 1]
    gamma = alpha * beta
    gamma /= gamma.sum(axis=1, keepdims=True)
    if n > 1:
        xi = T * (alpha[:-1].T @ (b[1:] * beta[1:] / c[1:, None]))
        xi /= n - 1
    else:
        xi = np.zeros((k, k))
    post = gamma.sum(axis=0) / n
    obs = gamma.T @ X / n
    if params.covariance_type == "full":
        weighted = gamma.T[:, :, None] * X[None, :, :]  # (K, n, D)
        obsobs = np.matmul(np.swapaxes(weighted, 1, 2), X) / n
    else:
        obsobs = gamma.T @ (X * X) / n
    stats = SufficientStats(
        start=gamma[0].copy(),
        trans=xi,
        post=post,
        obs=obs,
        obsobs=obsobs,
        covariance_type=params.covariance_type,
    )
    return stats, float(np.log(c).sum() + m.sum())
