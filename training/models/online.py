"""``partial_fit``: stepwise online EM on a Gaussian HMM's sufficient statistics, with a guard.

Each batch's expected statistics ``s`` (from forward-backward under the current model) are
blended into running statistics ``S <- (1 - g) S + g s`` with ``g = max(min_step,
(n_updates + step_offset) ** -step_exponent)`` (Liang & Klein's stepwise EM; ``min_step`` keeps
a little forgetting so the model keeps tracking). The child model is the M-step of ``S`` —
states keep their index, so state ids mean the same thing as in the parent. When no statistics
are carried, they start as the parent's own expected statistics (stationary occupancy), so the
first update moves the parent only partly toward the batch.

The guard refuses (``accepted=False``, parent returned unchanged, with a reason) a child that is
invalid, that reorders states, or whose held-out log-likelihood per sample falls by more than
``max_ll_drop`` nats. Imports only numpy/scipy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.errors import BadInputError
from training.models.hmm import DegenerateModelError
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMParams
from training.models.hmm import align_states
from training.models.hmm import check_matrix
from training.models.hmm import floor_covars
from training.models.hmm.params import require_arrays


@dataclass(frozen=True)
class OnlineEMConfig:
    """Step-size schedule, inner EM iterations per batch, and the guard's tolerances."""

    step_exponent: float = 0.6
    step_offset: float = 2.0
    min_step: float = 0.05
    n_inner: int = 2
    max_ll_drop: float = 0.05
    heldout_frac: float = 0.2
    covar_floor: float = 1e-4
    startprob_floor: float = 1e-6
    min_state_mass: float = 1e-8

    def __post_init__(self) -> None:
        if not (0.5 < self.step_exponent <= 1.0):
            raise BadInputError(
                f"OnlineEMConfig.step_exponent must be in (0.5, 1], got {self.step_exponent}"
            )
        if self.step_offset < 1.0:
            raise BadInputError(f"OnlineEMConfig.step_offset must be >= 1, got {self.step_offset}")
        if not (0.0 <= self.min_step < 1.0):
            raise BadInputError(f"OnlineEMConfig.min_step must be in [0, 1), got {self.min_step}")
        if self.n_inner < 1:
            raise BadInputError(f"OnlineEMConfig.n_inner must be >= 1, got {self.n_inner}")
        if not (0.0 < self.heldout_frac < 1.0):
            raise BadInputError(
                f"OnlineEMConfig.heldout_frac must be in (0, 1), got {self.heldout_frac}"
            )
        if self.max_ll_drop < 0 or self.covar_floor <= 0:
            raise BadInputError("OnlineEMConfig.max_ll_drop must be >= 0 and covar_floor > 0")

    def step_size(self, n_updates: int) -> float:
        """``g`` for the update after ``n_updates`` earlier ones.

        >>> round(OnlineEMConfig().step_size(0), 4), OnlineEMConfig().step_size(10**6)
        (0.6598, 0.05)
        """
        return max(self.min_step, (n_updates + self.step_offset) ** -self.step_exponent)


@dataclass(frozen=True, eq=False)
class SufficientStats:
    """Per-sample-normalised expected statistics of a Gaussian HMM (the online EM state).

    ``obsobs`` is ``E[gamma x x^T]`` ``(K, D, D)`` for full covariances, ``E[gamma x^2]``
    ``(K, D)`` for diag.
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
    def from_params(cls, params: HMMParams) -> SufficientStats:
        """The statistics whose M-step gives back ``params`` (weights: stationary occupancy)."""
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
        )

    def blend(self, other: SufficientStats, g: float, n_samples: int) -> SufficientStats:
        """``(1 - g) * self + g * other``, counting one more update."""
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
        """M-step; raises :class:`DegenerateModelError` for an empty state or a zero transition row."""
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


@dataclass(frozen=True)
class PartialFitResult:
    """Outcome of one :func:`partial_fit`; ``params`` is the parent when not ``accepted``."""

    params: HMMParams
    accepted: bool
    reason: str
    heldout_ll_before: float
    heldout_ll_after: float
    n_samples: int
    duration_s: float
    step_size: float = 0.0


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


def _heldout_ll(
    params: HMMParams, X_train: np.ndarray, X_held: np.ndarray, conditioned: bool
) -> float:
    """Per-sample ``log p(held | train)`` (filter over both) or ``log p(held)`` alone."""
    f = ForwardFilter(params)
    if conditioned and len(X_train):
        run = f.run(np.vstack([X_train, X_held]))
        return float(run.loglik[len(X_train) :].mean())
    return float(f.run(X_held).loglik.mean())


def partial_fit(
    params: HMMParams,
    X: np.ndarray,
    config: OnlineEMConfig = OnlineEMConfig(),
    stats: SufficientStats | None = None,
    heldout: np.ndarray | None = None,
) -> tuple[PartialFitResult, SufficientStats]:
    """One guarded online-EM update from a batch ``X`` (time-ordered rows).

    The held-out set is ``heldout`` if given (then all of ``X`` is used to update), else the last
    ``config.heldout_frac`` of ``X`` (scored conditioned on the rows before it). Returns the
    result and the statistics to carry into the next call (unchanged when refused).
    """
    t0 = time.perf_counter()
    X = check_matrix(X, params.n_features)
    if stats is None:
        stats = SufficientStats.from_params(params)
    elif (stats.n_states, stats.n_features, stats.covariance_type) != (
        params.n_states,
        params.n_features,
        params.covariance_type,
    ):
        raise BadInputError(
            f"stats: shape (K={stats.n_states}, D={stats.n_features}, {stats.covariance_type}) "
            f"does not match params (K={params.n_states}, D={params.n_features}, {params.covariance_type})"
        )
    if heldout is not None:
        X_train, X_held, conditioned = X, check_matrix(heldout, params.n_features, "heldout"), False
    else:
        n_held = max(1, round(len(X) * config.heldout_frac))
        X_train, X_held, conditioned = X[:-n_held], X[-n_held:], True
    if len(X_train) < 2:
        raise BadInputError(f"X: {len(X)} samples leave fewer than 2 to update with")
    g = config.step_size(stats.n_updates)

    def result(
        child: HMMParams, accepted: bool, reason: str, before: float, after: float
    ) -> PartialFitResult:
        return PartialFitResult(
            params=child,
            accepted=accepted,
            reason=reason,
            heldout_ll_before=before,
            heldout_ll_after=after,
            n_samples=len(X),
            duration_s=time.perf_counter() - t0,
            step_size=g,
        )

    before = _heldout_ll(params, X_train, X_held, conditioned)
    child = params
    new_stats = stats
    try:
        for _ in range(config.n_inner):
            s_batch, _ = batch_stats(child, X_train)
            new_stats = stats.blend(s_batch, g, len(X_train))
            child = new_stats.to_params(
                config.covar_floor, config.startprob_floor, config.min_state_mass
            )
    except (DegenerateModelError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return result(params, False, f"invalid child: {exc}", before, float("nan")), stats
    perm = align_states(params, child)
    if not np.array_equal(perm, np.arange(params.n_states)):
        return result(
            params,
            False,
            f"state identity changed: alignment {perm.tolist()}",
            before,
            float("nan"),
        ), stats
    after = _heldout_ll(child, X_train, X_held, conditioned)
    if not math.isfinite(after):
        return result(params, False, "held-out log-likelihood is not finite", before, after), stats
    if after < before - config.max_ll_drop:
        reason = (
            f"held-out log-likelihood fell {before - after:.4f} nats/sample > {config.max_ll_drop}"
        )
        return result(params, False, reason, before, after), stats
    return result(child, True, "ok", before, after), new_stats
