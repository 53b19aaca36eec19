"""Gaussian HMM regimes: multi-init fitting, canonical state order and a causal forward filter.

The model is fitted offline with hmmlearn (several inits per K, degenerate fits refused, best by
BIC or log-likelihood) and stored as plain arrays (:class:`HMMParams`). Inference never uses
hmmlearn's ``predict``/``predict_proba`` (smoothed, i.e. they look ahead): :class:`ForwardFilter`
steps one sample at a time in log space, and the very same code runs in training, in Serve
replicas and in the Nautilus node. Imports only numpy/scipy/hmmlearn.

>>> params = HMMParams(
...     startprob=np.array([0.5, 0.5]),
...     transmat=np.array([[0.9, 0.1], [0.1, 0.9]]),
...     means=np.array([[-1.0], [1.0]]),
...     covars=np.array([[[0.25]], [[0.25]]]),
... )
>>> f = ForwardFilter(params)
>>> s = f.step(np.array([1.1]))
>>> int(s.state), round(float(s.confidence), 3)
(1, 1.0)
>>> s2 = f.step(np.array([-0.9]), s.log_posterior)
>>> int(s2.state)
0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

CovarianceType = Literal["full", "diag"]

_LOG_2PI = math.log(2.0 * math.pi)
_TINY = np.finfo(np.float64).tiny


class DegenerateModelError(ValueError):
    """HMM parameters that cannot be used: NaN, zero transition rows, non-PD covariances, ..."""


@dataclass(frozen=True)
class HMMConfig:
    """How :func:`fit_hmm` searches: K range (inclusive), inits per K, selection criterion.

    ``order_feature`` is the feature column whose state means define the canonical state order
    (e.g. realised vol, so state 0 is always the calmest regime); ``None`` orders by mean norm.
    ``blas_threads`` caps BLAS threads while fitting (``None``: library default): on a shared
    machine OpenBLAS threads spin against each other and made fits ~9x slower here.
    """

    k_range: tuple[int, int] = (3, 5)
    covariance_type: CovarianceType = "full"
    n_init: int = 5
    n_iter: int = 100
    tol: float = 1e-3
    seed: int = 0
    criterion: Literal["bic", "loglik"] = "bic"
    min_occupancy: float = 0.01
    covar_floor: float = 1e-4
    order_feature: int | None = None
    blas_threads: int | None = 1

    def __post_init__(self) -> None:
        lo, hi = self.k_range
        if not (1 <= lo <= hi):
            raise ValueError(f"HMMConfig.k_range must satisfy 1 <= lo <= hi, got {self.k_range}")
        if self.covariance_type not in ("full", "diag"):
            raise ValueError(
                f"HMMConfig.covariance_type must be 'full' or 'diag', got {self.covariance_type!r}"
            )
        if self.criterion not in ("bic", "loglik"):
            raise ValueError(
                f"HMMConfig.criterion must be 'bic' or 'loglik', got {self.criterion!r}"
            )
        if self.n_init < 1 or self.n_iter < 1:
            raise ValueError("HMMConfig.n_init and n_iter must be >= 1")
        if not (0.0 <= self.min_occupancy < 1.0):
            raise ValueError(f"HMMConfig.min_occupancy must be in [0, 1), got {self.min_occupancy}")
        if self.covar_floor <= 0.0:
            raise ValueError(f"HMMConfig.covar_floor must be > 0, got {self.covar_floor}")


@dataclass(frozen=True, eq=False)
class HMMParams:
    """The whole Gaussian HMM as numpy arrays; validated on construction.

    ``covars`` is ``(K, D, D)`` for ``full`` and ``(K, D)`` (variances) for ``diag``.
    """

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covars: np.ndarray
    covariance_type: CovarianceType = "full"

    def __post_init__(self) -> None:
        for name in ("startprob", "transmat", "means", "covars"):
            arr = np.array(getattr(self, name), dtype=np.float64, copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        self.validate()

    @property
    def n_states(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def full_covars(self) -> np.ndarray:
        """Covariances as ``(K, D, D)`` whatever the covariance type."""
        if self.covariance_type == "full":
            return self.covars.copy()
        return np.stack([np.diag(c) for c in self.covars])

    def validate(self) -> None:
        """Raise :class:`DegenerateModelError` naming the first problem found."""
        if self.covariance_type not in ("full", "diag"):
            raise DegenerateModelError(
                f"covariance_type: expected 'full' or 'diag', got {self.covariance_type!r}"
            )
        if self.means.ndim != 2 or self.means.shape[0] < 1 or self.means.shape[1] < 1:
            raise DegenerateModelError(f"means: expected shape (K, D), got {self.means.shape}")
        k, d = self.means.shape
        want = {
            "startprob": (k,),
            "transmat": (k, k),
            "covars": (k, d, d) if self.covariance_type == "full" else (k, d),
        }
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != shape:
                raise DegenerateModelError(f"{name}: expected shape {shape}, got {got}")
        for name in ("startprob", "transmat", "means", "covars"):
            arr = getattr(self, name)
            if not np.isfinite(arr).all():
                idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                raise DegenerateModelError(f"{name}: non-finite value at {idx}")
        if (self.startprob < 0).any() or abs(self.startprob.sum() - 1.0) > 1e-6:
            raise DegenerateModelError(
                f"startprob: must be >= 0 and sum to 1, sum={self.startprob.sum()}"
            )
        if (self.transmat < 0).any():
            raise DegenerateModelError("transmat: negative probability")
        rows = self.transmat.sum(axis=1)
        bad = np.flatnonzero(np.abs(rows - 1.0) > 1e-6)
        if bad.size:
            raise DegenerateModelError(
                f"transmat: row {int(bad[0])} sums to {rows[bad[0]]:.6g} (zero/unnormalised row)"
            )
        if self.covariance_type == "diag":
            bad_state = np.flatnonzero((self.covars <= 0).any(axis=1))
            if bad_state.size:
                raise DegenerateModelError(f"covars: state {int(bad_state[0])} has a variance <= 0")
        else:
            for s in range(k):
                c = self.covars[s]
                if not np.allclose(c, c.T, rtol=1e-8, atol=1e-10):
                    raise DegenerateModelError(f"covars: state {s} is not symmetric")
                try:
                    np.linalg.cholesky(c)
                except np.linalg.LinAlgError:
                    raise DegenerateModelError(
                        f"covars: state {s} is not positive definite"
                    ) from None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickle); inverse of :meth:`from_arrays`."""
        return {
            "startprob": self.startprob.copy(),
            "transmat": self.transmat.copy(),
            "means": self.means.copy(),
            "covars": self.covars.copy(),
            "covariance_type": np.array(self.covariance_type),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, Any]) -> HMMParams:
        """Rebuild from :meth:`to_arrays` output (or an ``np.load`` of it)."""
        missing = [
            n for n in ("startprob", "transmat", "means", "covars", "covariance_type") if n not in d
        ]
        if missing:
            raise DegenerateModelError(f"HMM arrays: missing {missing}")
        return cls(
            startprob=np.asarray(d["startprob"]),
            transmat=np.asarray(d["transmat"]),
            means=np.asarray(d["means"]),
            covars=np.asarray(d["covars"]),
            covariance_type=str(np.asarray(d["covariance_type"]).item()),  # type: ignore[arg-type]
        )

    def permute(self, perm: Sequence[int] | np.ndarray) -> HMMParams:
        """The same model with state ``i`` of the result being state ``perm[i]`` of this one."""
        p = np.asarray(perm, dtype=np.intp)
        if sorted(p.tolist()) != list(range(self.n_states)):
            raise ValueError(f"perm: not a permutation of 0..{self.n_states - 1}: {p.tolist()}")
        return HMMParams(
            startprob=self.startprob[p],
            transmat=self.transmat[np.ix_(p, p)],
            means=self.means[p],
            covars=self.covars[p],
            covariance_type=self.covariance_type,
        )

    def equals(self, other: HMMParams, atol: float = 0.0) -> bool:
        """Whether two models have the same type and (within ``atol``) the same arrays."""
        if self.covariance_type != other.covariance_type:
            return False
        return all(
            getattr(self, n).shape == getattr(other, n).shape
            and np.allclose(getattr(self, n), getattr(other, n), rtol=0.0, atol=atol)
            for n in ("startprob", "transmat", "means", "covars")
        )


@dataclass(frozen=True)
class HMMFit:
    """Result of :func:`fit_hmm`: the chosen (canonically ordered) model and every candidate tried."""

    params: HMMParams
    k: int
    loglik: float
    bic: float
    aic: float
    n_params: int
    n_samples: int
    occupancy: np.ndarray
    candidates: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- the filter


class FilterStep(NamedTuple):
    """One causal update: ``p(z_t | x_<=t)`` in log and linear space, its argmax and max,
    and ``log p(x_t | x_<t)``."""

    log_posterior: np.ndarray
    posterior: np.ndarray
    state: int
    confidence: float
    loglik: float


@dataclass(frozen=True, eq=False)
class FilterRun:
    """:meth:`ForwardFilter.run` over a sequence: one row per sample."""

    log_posteriors: np.ndarray
    posteriors: np.ndarray
    states: np.ndarray
    confidence: np.ndarray
    loglik: np.ndarray

    @property
    def total_loglik(self) -> float:
        return float(self.loglik.sum())


class ForwardFilter:
    """Causal forward filter in log space: the posterior at ``t`` uses ``x_0..x_t`` only.

    Inverse Cholesky factors and log normalisers are precomputed, so one :meth:`step` costs a
    few small numpy operations (~10-20 µs for K=4, D=10). :meth:`run` is the same recursion
    with the Gaussian log densities computed for all rows at once and the update in scaled
    probability space (a test proves it equals a loop of :meth:`step`).
    """

    def __init__(self, params: HMMParams) -> None:
        self.params = params
        self.n_states = params.n_states
        self.n_features = params.n_features
        self._means = np.ascontiguousarray(params.means)
        self._transmat = np.ascontiguousarray(params.transmat)
        with np.errstate(divide="ignore"):
            self._log_start = np.log(params.startprob)
        d = params.n_features
        if params.covariance_type == "full":
            chol = np.linalg.cholesky(params.covars)
            eye = np.broadcast_to(np.eye(d), chol.shape)
            self._prec_chol = np.ascontiguousarray(np.linalg.solve(chol, eye))  # L^-1
            log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            self._inv_var = None
        else:
            self._prec_chol = None
            self._inv_var = np.ascontiguousarray(1.0 / params.covars)
            log_det = np.log(params.covars).sum(axis=1)
        self._log_norm = -0.5 * (d * _LOG_2PI + log_det)

    # -- pieces shared by step() and run()

    def log_emission(self, X: np.ndarray) -> np.ndarray:
        """``log N(x | mean_k, cov_k)`` for every row and state: ``(n, K)`` (or ``(K,)`` for one row)."""
        diff = X[..., None, :] - self._means
        if self._prec_chol is not None:
            z = np.matmul(self._prec_chol, diff[..., None])[..., 0]
            maha = np.einsum("...kd,...kd->...k", z, z)
        else:
            maha = np.einsum("...kd,kd->...k", diff * diff, self._inv_var)
        return self._log_norm - 0.5 * maha

    def predict(self, log_prev: np.ndarray) -> np.ndarray:
        """One-step prediction ``log p(z_t | x_<t)`` from the previous filtered log posterior."""
        m = log_prev.max()
        pred = np.exp(log_prev - m) @ self._transmat
        return np.log(np.maximum(pred, _TINY)) + m

    def _update(self, log_pred: np.ndarray, log_b: np.ndarray) -> FilterStep:
        lj = log_pred + log_b
        m = lj.max()
        if not math.isfinite(m):
            raise FloatingPointError(
                "forward filter: observation has zero likelihood under every state"
            )
        p = np.exp(lj - m)
        s = p.sum()
        inc = float(m) + math.log(s)
        post = p / s
        state = int(post.argmax())
        return FilterStep(lj - inc, post, state, float(post[state]), inc)

    # -- public API

    def initial(self) -> np.ndarray:
        """Log prior of the first sample (``log startprob``); pass ``log_prev=None`` to use it."""
        return self._log_start.copy()

    def step(self, x: np.ndarray, log_prev: np.ndarray | None = None) -> FilterStep:
        """Filter one sample ``x`` (shape ``(D,)``); ``log_prev`` is the previous step's
        ``log_posterior`` (``None`` at a sequence start: the prior is ``startprob``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_features,):
            raise ValueError(f"x: expected shape ({self.n_features},), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(
                f"x: non-finite feature at index {int(np.flatnonzero(~np.isfinite(x))[0])}"
            )
        if log_prev is None:
            log_pred = self._log_start
        else:
            log_prev = np.asarray(log_prev, dtype=np.float64)
            if log_prev.shape != (self.n_states,):
                raise ValueError(
                    f"log_prev: expected shape ({self.n_states},), got {log_prev.shape}"
                )
            if np.isnan(log_prev).any() or not np.isfinite(log_prev.max()):
                raise ValueError("log_prev: NaN or all -inf log posterior")
            log_pred = self.predict(log_prev)
        return self._update(log_pred, self.log_emission(x))

    def run(
        self,
        X: np.ndarray,
        lengths: Sequence[int] | None = None,
        log_prev: np.ndarray | None = None,
    ) -> FilterRun:
        """Filter every row of ``X`` causally; each sequence in ``lengths`` restarts from
        ``startprob`` (the first one from ``log_prev`` if given)."""
        X = check_matrix(X, self.n_features)
        n = X.shape[0]
        starts = _sequence_starts(n, lengths)
        log_b = np.empty((n, self.n_states))
        chunk = 65536
        for a in range(0, n, chunk):
            log_b[a : a + chunk] = self.log_emission(X[a : a + chunk])
        # Same recursion as step(), in scaled probability space: with emissions divided by
        # their row max and the posterior normalised each step nothing under- or overflows,
        # and it costs a third of the log-space step. A step whose scaled joint vanishes
        # (an outlier only impossible states explain) falls back to the log-space update.
        b_max = log_b.max(axis=1)
        b = np.exp(log_b - b_max[:, None])
        start = self.params.startprob
        T = self._transmat
        post = np.empty((n, self.n_states))
        ll = np.empty(n)
        p: np.ndarray | None = None
        for t in range(n):
            if t in starts and (t > 0 or log_prev is None):
                pred = start
            elif p is None:
                pred = np.exp(self.predict(np.asarray(log_prev, dtype=np.float64)))
            else:
                pred = p @ T
            a = pred * b[t]
            s = a.sum()
            if s > 1e-250:
                p = a / s
                ll[t] = math.log(s) + b_max[t]
            else:
                r = self._update(np.log(np.maximum(pred, _TINY)), log_b[t])
                p = r.posterior
                ll[t] = r.loglik
            post[t] = p
        states = post.argmax(axis=1)
        conf = post[np.arange(n), states]
        log_post = np.log(np.maximum(post, _TINY))
        return FilterRun(log_post, post, states, conf, ll)


# --------------------------------------------------------------------------- helpers


def check_matrix(X: np.ndarray, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """``X`` as a finite float64 ``(n, D)`` array, or a ValueError naming the row and column."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}"
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name}: expected {n_features} features, got {X.shape[1]}")
    if not np.isfinite(X).all():
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"{name}: non-finite value at row {int(r)}, column {int(c)}")
    return X


def _sequence_starts(n: int, lengths: Sequence[int] | None) -> set[int]:
    if lengths is None:
        return {0}
    lens = [int(v) for v in lengths]
    if any(v <= 0 for v in lens) or sum(lens) != n:
        raise ValueError(f"lengths: must be positive and sum to n_samples={n}, got sum {sum(lens)}")
    return {int(s) for s in np.concatenate([[0], np.cumsum(lens)[:-1]])}


def n_free_params(n_states: int, n_features: int, covariance_type: CovarianceType) -> int:
    """Free parameters of a Gaussian HMM (for BIC/AIC).

    >>> n_free_params(3, 2, "full"), n_free_params(3, 2, "diag")
    (23, 20)
    """
    k, d = n_states, n_features
    cov = k * d * (d + 1) // 2 if covariance_type == "full" else k * d
    return (k - 1) + k * (k - 1) + k * d + cov


def log_likelihood(params: HMMParams, X: np.ndarray, lengths: Sequence[int] | None = None) -> float:
    """``log p(X)`` by the forward filter (sum of one-step predictive log densities)."""
    return ForwardFilter(params).run(X, lengths).total_loglik


def bic(params: HMMParams, X: np.ndarray, lengths: Sequence[int] | None = None) -> float:
    """Bayesian information criterion ``-2 log L + p log n`` (lower is better)."""
    n = np.asarray(X).shape[0]
    p = n_free_params(params.n_states, params.n_features, params.covariance_type)
    return -2.0 * log_likelihood(params, X, lengths) + p * math.log(n)


def state_entropy(posteriors: np.ndarray) -> float:
    """Mean entropy of posterior rows, normalised by ``log K`` to 0 (certain) .. 1 (uniform).

    >>> state_entropy(np.array([[1.0, 0.0], [0.5, 0.5]]))
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
            raise ValueError(
                f"order_feature: {order_feature} out of range 0..{params.n_features - 1}"
            )
        return np.argsort(m[:, order_feature], kind="stable")
    return np.lexsort((m[:, 0], np.linalg.norm(m, axis=1)))


def align_states(reference: HMMParams, params: HMMParams) -> np.ndarray:
    """Permutation ``perm`` such that ``params.permute(perm)`` state ``i`` matches ``reference``
    state ``i`` (Hungarian assignment on squared distances between means)."""
    if reference.means.shape != params.means.shape:
        raise ValueError(
            f"align_states: means shapes differ: {reference.means.shape} vs {params.means.shape}"
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
        raise ValueError(
            f"true_states {t.shape} and pred_states {p.shape}: need equal non-empty 1-D"
        )
    conf = np.zeros((k, int(t.max()) + 1))
    np.add.at(conf, (p, t), 1.0)
    return float(conf.max(axis=1).sum() / max(len(t), 1))


# --------------------------------------------------------------------------- fitting


def _params_from_model(
    model: Any, covariance_type: CovarianceType, covar_floor: float
) -> HMMParams:
    full = np.asarray(model.covars_)  # hmmlearn's getter is always (K, D, D)
    if covariance_type == "diag":
        covars = np.maximum(np.diagonal(full, axis1=1, axis2=2), covar_floor)
    else:
        covars = floor_covars(full, covar_floor)
    return HMMParams(
        startprob=np.asarray(model.startprob_),
        transmat=np.asarray(model.transmat_),
        means=np.asarray(model.means_),
        covars=covars,
        covariance_type=covariance_type,
    )


def floor_covars(covars: np.ndarray, floor: float) -> np.ndarray:
    """Symmetrise and lift eigenvalues below ``floor`` (keeps PD matrices PD in float64)."""
    sym = 0.5 * (covars + np.swapaxes(covars, -1, -2))
    if not np.isfinite(sym).all():
        return sym  # validate() will name the state
    w, v = np.linalg.eigh(sym)
    if (w >= floor).all():
        return sym
    w = np.maximum(w, floor)
    out = (v * w[..., None, :]) @ np.swapaxes(v, -1, -2)
    return 0.5 * (out + np.swapaxes(out, -1, -2))


def _set_model_params(model: Any, params: HMMParams) -> None:
    model.startprob_ = params.startprob.copy()
    model.transmat_ = params.transmat.copy()
    model.means_ = params.means.copy()
    model.covars_ = params.covars.copy()  # (K, D) for diag, (K, D, D) for full


def _random_init(
    X: np.ndarray, k: int, rng: np.random.Generator, cov_type: CovarianceType, floor: float
) -> HMMParams:
    """Diverse start: means at random distinct rows, global covariance, sticky random transitions."""
    n, d = X.shape
    idx = rng.choice(n, size=k, replace=False)
    means = X[idx] + 1e-6 * rng.standard_normal((k, d))
    cov = np.atleast_2d(np.cov(X.T)) + floor * np.eye(d)
    trans = 0.8 * np.eye(k) + 0.2 * rng.dirichlet(np.ones(k), size=k)
    return HMMParams(
        startprob=np.full(k, 1.0 / k),
        transmat=trans / trans.sum(axis=1, keepdims=True),
        means=means,
        covars=np.tile(cov, (k, 1, 1)) if cov_type == "full" else np.tile(np.diag(cov), (k, 1)),
        covariance_type=cov_type,
    )


def fit_hmm(
    X: np.ndarray,
    lengths: Sequence[int] | None = None,
    config: HMMConfig = HMMConfig(),
    progress: bool = False,
) -> HMMFit:
    """Fit Gaussian HMMs for every K in ``config.k_range`` with ``config.n_init`` inits each and
    return the best valid one by ``config.criterion``, in canonical state order.

    Init 0 of each K is hmmlearn's k-means init; the others start from random rows of ``X`` with
    sticky random transitions (k-means inits tend to converge to the same optimum). A candidate
    is refused (``ok=False`` with a ``reason``) if EM raises, the parameters are degenerate
    (:meth:`HMMParams.validate`) or a state's posterior occupancy is below ``min_occupancy``.
    Raises :class:`DegenerateModelError` if no candidate is valid.
    """
    from hmmlearn.hmm import GaussianHMM  # heavy-ish import (sklearn), only needed to fit
    from threadpoolctl import threadpool_limits  # an hmmlearn (sklearn) dependency

    with threadpool_limits(limits=config.blas_threads):
        return _fit_hmm(GaussianHMM, X, lengths, config, progress)


def _fit_hmm(
    GaussianHMM: Any,
    X: np.ndarray,
    lengths: Sequence[int] | None,
    config: HMMConfig,
    progress: bool,
) -> HMMFit:
    X = check_matrix(X)
    n, d = X.shape
    _sequence_starts(n, lengths)
    lo, hi = config.k_range
    if n <= hi:
        raise ValueError(f"X: {n} samples is too few for K up to {hi}")
    candidates: list[dict[str, Any]] = []
    best: tuple[float, HMMParams, dict[str, Any], np.ndarray] | None = None
    jobs = [(k, i) for k in range(lo, hi + 1) for i in range(config.n_init)]
    it: Any = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="fit_hmm", unit="fit")
    for k, i in it:
        seed = config.seed * 1_000_003 + k * 1009 + i
        rng = np.random.default_rng(seed)
        cand: dict[str, Any] = {"k": k, "init": i, "seed": seed, "ok": False, "reason": ""}
        cand.update(loglik=float("nan"), bic=float("nan"), aic=float("nan"), n_iter=0)
        model = GaussianHMM(
            n_components=k,
            covariance_type=config.covariance_type,
            min_covar=config.covar_floor,
            n_iter=config.n_iter,
            tol=config.tol,
            random_state=int(rng.integers(2**31 - 1)),
            init_params="stmc" if i == 0 else "",
            params="stmc",
            implementation="log",
        )
        if i > 0:
            _set_model_params(
                model, _random_init(X, k, rng, config.covariance_type, config.covar_floor)
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, lengths)
            params = _params_from_model(model, config.covariance_type, config.covar_floor)
            _set_model_params(model, params)
            loglik, post = model.score_samples(X, lengths)  # smoothed: fit diagnostics only
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            cand["reason"] = f"{type(exc).__name__}: {exc}"
            candidates.append(cand)
            continue
        cand["n_iter"] = int(model.monitor_.iter)
        occupancy = post.mean(axis=0)
        p = n_free_params(k, d, config.covariance_type)
        cand.update(
            loglik=float(loglik),
            bic=float(-2.0 * loglik + p * math.log(n)),
            aic=float(-2.0 * loglik + 2.0 * p),
            n_params=p,
            min_occupancy=float(occupancy.min()),
        )
        if not math.isfinite(loglik):
            cand["reason"] = "non-finite log-likelihood"
        elif occupancy.min() < config.min_occupancy:
            cand["reason"] = (
                f"empty state {int(occupancy.argmin())}: occupancy {occupancy.min():.4g}"
            )
        else:
            cand["ok"] = True
            score = cand["bic"] if config.criterion == "bic" else -cand["loglik"]
            if best is None or score < best[0]:
                best = (score, params, cand, occupancy)
        candidates.append(cand)
    if best is None:
        reasons = "; ".join(f"k={c['k']} init={c['init']}: {c['reason']}" for c in candidates)
        raise DegenerateModelError(f"fit_hmm: no valid candidate ({reasons})")
    _, params, cand, occupancy = best
    order = canonical_order(params, config.order_feature)
    return HMMFit(
        params=params.permute(order),
        k=int(cand["k"]),
        loglik=float(cand["loglik"]),
        bic=float(cand["bic"]),
        aic=float(cand["aic"]),
        n_params=int(cand["n_params"]),
        n_samples=n,
        occupancy=occupancy[order],
        candidates=candidates,
    )


def sample_hmm(params: HMMParams, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``(X, states)`` of length ``n`` from the model (ground truth for tests and demos)."""
    rng = np.random.default_rng(seed)
    k, d = params.n_states, params.n_features
    cum = np.cumsum(params.transmat, axis=1)
    u = rng.random(n)
    states = np.empty(n, dtype=np.int64)
    states[0] = int(rng.choice(k, p=params.startprob))
    for t in range(1, n):
        states[t] = min(int(np.searchsorted(cum[states[t - 1]], u[t], side="right")), k - 1)
    chol = np.linalg.cholesky(params.full_covars())
    z = rng.standard_normal((n, d))
    X = params.means[states] + np.einsum("nij,nj->ni", chol[states], z)
    return X, states
