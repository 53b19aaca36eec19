"""Gaussian HMM parameters as plain numpy arrays: validated, permutable, stored without pickle.

Numpy only; :mod:`training.models.hmm.filter` runs them, :mod:`~training.models.hmm.fit` makes them.

>>> p = HMMParams(
...     startprob=[0.5, 0.5],
...     transmat=[[0.9, 0.1], [0.1, 0.9]],
...     means=[[-1.0], [1.0]],
...     covars=[[[0.25]], [[0.25]]],
... )
>>> p.n_states, p.n_features, p.permute([1, 0]).means.ravel().tolist()
(2, 1, [1.0, -1.0])
>>> HMMParams([1.0, 0.0], [[1.0, 0.0], [0.0, 0.0]], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
Traceback (most recent call last):
...
training.models.hmm.params.DegenerateModelError: transmat: row 1 sums to 0 (zero/unnormalised row)
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Literal

import numpy as np

from training.errors import BadInputError

__all__ = [
    "CovarianceType",
    "DegenerateModelError",
    "HMMParams",
    "floor_covars",
    "n_free_params",
    "require_arrays",
    "sample_hmm",
]

CovarianceType = Literal["full", "diag"]


class DegenerateModelError(BadInputError):
    """HMM parameters that cannot be used: NaN, zero transition rows, non-PD covariances, ...

    Bad input in the :class:`~training.errors.NhmmError` sense: data (or a fit on it) that
    cannot give a usable model.
    """


def require_arrays(d: Mapping[str, Any], names: Iterable[str], what: str) -> None:
    """Raise :class:`DegenerateModelError` naming the arrays of ``names`` missing from ``d``."""
    missing = [n for n in names if n not in d]
    if missing:
        raise DegenerateModelError(f"{what}: missing {missing}")


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
        require_arrays(
            d, ("startprob", "transmat", "means", "covars", "covariance_type"), "HMM arrays"
        )
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


def n_free_params(n_states: int, n_features: int, covariance_type: CovarianceType) -> int:
    """Free parameters of a Gaussian HMM (for BIC/AIC).

    >>> n_free_params(3, 2, "full"), n_free_params(3, 2, "diag")
    (23, 20)
    """
    k, d = n_states, n_features
    cov = k * d * (d + 1) // 2 if covariance_type == "full" else k * d
    return (k - 1) + k * (k - 1) + k * d + cov


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
