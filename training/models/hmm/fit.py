"""Fitting Gaussian HMMs with hmmlearn: several inits per K, degenerate fits refused, best by
BIC or log-likelihood, returned in canonical state order.

hmmlearn (and with it scikit-learn) is imported only inside :func:`fit_hmm`; the rest of
:mod:`training.models.hmm` never needs it, so Serve replicas and the node stay light.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

import numpy as np

from training.errors import BadInputError
from training.models.hmm._arrays import check_matrix
from training.models.hmm._arrays import sequence_starts
from training.models.hmm.evaluate import canonical_order
from training.models.hmm.params import CovarianceType
from training.models.hmm.params import DegenerateModelError
from training.models.hmm.params import HMMParams
from training.models.hmm.params import floor_covars
from training.models.hmm.params import n_free_params

__all__ = ["HMMConfig", "HMMFit", "fit_hmm"]


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
            raise BadInputError(
                f"HMMConfig.k_range must satisfy 1 <= lo <= hi, got {self.k_range}", field="k_range"
            )
        if self.covariance_type not in ("full", "diag"):
            raise BadInputError(
                f"HMMConfig.covariance_type must be 'full' or 'diag', got {self.covariance_type!r}",
                field="covariance_type",
            )
        if self.criterion not in ("bic", "loglik"):
            raise BadInputError(
                f"HMMConfig.criterion must be 'bic' or 'loglik', got {self.criterion!r}",
                field="criterion",
            )
        if self.n_init < 1 or self.n_iter < 1:
            raise BadInputError("HMMConfig.n_init and n_iter must be >= 1", field="n_init")
        if not (0.0 <= self.min_occupancy < 1.0):
            raise BadInputError(
                f"HMMConfig.min_occupancy must be in [0, 1), got {self.min_occupancy}",
                field="min_occupancy",
            )
        if self.covar_floor <= 0.0:
            raise BadInputError(
                f"HMMConfig.covar_floor must be > 0, got {self.covar_floor}", field="covar_floor"
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
    sequence_starts(n, lengths)
    lo, hi = config.k_range
    if n <= hi:
        raise BadInputError(f"X: {n} samples is too few for K up to {hi}", field="X")
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
