"""The reservoir: a bounded sample of the training data spanning every regime, kept in the
bundle so online EM can check that a child still explains what its memory was trained on.

Training sequences are cut into non-overlapping segments of ``segment_len`` rows; each segment
is labelled by the majority of the trained model's causal (argmax-filtered) state over it, and
up to ``per_state`` segments per state are drawn at random. Each segment carries the weight that
makes the stratified sample stand for the training data again (its stratum's share of the
training segments over the segments drawn from it), so :attr:`ReservoirScore.mean` estimates the
training rows' log-likelihood per sample while every regime is still checked on its own. Each
segment also keeps its log-likelihood under the trained model (``reference_ll``): the yardstick
for how much of a regime a lineage of online updates has forgotten. Segments keep their time order
inside, so a segment's score includes the transitions, not only the emissions: each is filtered
from the scoring model's stationary distribution (it starts mid-day). Numpy only.

>>> from training.models.hmm import HMMParams, sample_hmm
>>> p = HMMParams(np.array([0.5, 0.5]), np.array([[0.95, 0.05], [0.05, 0.95]]),
...               np.array([[-2.0], [2.0]]), np.array([[1.0], [1.0]]), "diag")
>>> X, _ = sample_hmm(p, 2000, seed=0)
>>> r = Reservoir.build(p, X, config=ReservoirConfig(segment_len=20, per_state=5))
>>> r.X.shape, np.bincount(r.strata).tolist(), round(float(r.weights.sum()), 6)
((10, 20, 1), [5, 5], 1.0)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.errors import BadInputError
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMParams
from training.models.hmm import check_matrix
from training.models.hmm.params import require_arrays
from training.models.online._stats import stationary_distribution

__all__ = ["Reservoir", "ReservoirConfig", "ReservoirScore"]

_TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class ReservoirConfig:
    """Segment length (rows), segments per state, and the sampling seed.

    The default keeps at most ``K * 16 * 32`` rows (2560 for K=5: ~250 kB at D=12).
    """

    segment_len: int = 32
    per_state: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.segment_len < 2:
            raise BadInputError(
                f"ReservoirConfig.segment_len must be >= 2, got {self.segment_len}",
                field="segment_len",
            )
        if self.per_state < 1:
            raise BadInputError(
                f"ReservoirConfig.per_state must be >= 1, got {self.per_state}", field="per_state"
            )


@dataclass(frozen=True, eq=False)
class ReservoirScore:
    """One model on the reservoir: per-row ``log p(x_t | x_<t)`` and filtered posteriors,
    ``(S, L)`` and ``(S, L, K)``, with each segment's stratum and weight."""

    loglik: np.ndarray
    posteriors: np.ndarray
    strata: np.ndarray
    weights: np.ndarray

    @property
    def mean(self) -> float:
        """Log-likelihood per sample of the training data, estimated (segments weighted)."""
        return float(self.weights @ self.loglik.mean(axis=1))

    def by_stratum(self) -> dict[int, float]:
        """Log-likelihood per sample of each stratum's rows."""
        return {int(k): float(self.loglik[self.strata == k].mean()) for k in np.unique(self.strata)}


@dataclass(frozen=True, eq=False)
class Reservoir:
    """``X`` ``(S, L, D)``: S time-ordered segments of L training rows; ``strata`` ``(S,)``: the
    filtered state each segment was drawn for; ``weights`` ``(S,)`` (sum 1): what each segment
    stands for in the training data; ``reference_ll`` ``(S,)``: each segment's log-likelihood
    per sample under the trained model."""

    X: np.ndarray
    strata: np.ndarray
    weights: np.ndarray
    reference_ll: np.ndarray

    def __post_init__(self) -> None:
        if self.X.ndim != 3 or self.X.shape[0] < 1 or self.X.shape[1] < 2:
            raise BadInputError(
                f"reservoir.X: expected shape (segments >= 1, rows >= 2, D), got {self.X.shape}",
                field="reservoir",
            )
        if self.strata.shape != (self.X.shape[0],):
            raise BadInputError(
                f"reservoir.strata: expected shape ({self.X.shape[0]},), got {self.strata.shape}",
                field="reservoir",
            )
        w = self.weights
        if w.shape != self.strata.shape or not (np.isfinite(w).all() and (w >= 0).all()):
            raise BadInputError(
                "reservoir.weights: expected one finite weight >= 0 per segment", field="reservoir"
            )
        if not abs(float(w.sum()) - 1.0) < 1e-9:
            raise BadInputError(f"reservoir.weights: sum {float(w.sum())} != 1", field="reservoir")
        if self.reference_ll.shape != self.strata.shape or not np.isfinite(self.reference_ll).all():
            raise BadInputError(
                "reservoir.reference_ll: expected one finite value per segment", field="reservoir"
            )
        check_matrix(self.X.reshape(-1, self.X.shape[2]), name="reservoir.X")

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0] * self.X.shape[1])

    @property
    def rows(self) -> np.ndarray:
        """Every reservoir row, ``(S * L, D)`` (segment by segment)."""
        return self.X.reshape(-1, self.X.shape[2])

    @classmethod
    def build(
        cls,
        params: HMMParams,
        X: np.ndarray,
        lengths: Sequence[int] | None = None,
        config: ReservoirConfig = ReservoirConfig(),
    ) -> Reservoir:
        """Draw the reservoir from training rows ``X`` (sequences ``lengths``), stratified by
        ``params``' argmax-filtered state. Raises if no sequence holds one whole segment."""
        X = check_matrix(X, params.n_features)
        states = ForwardFilter(params).run(X, lengths).states
        bounds = np.cumsum([0, *(lengths if lengths is not None else [len(X)])])
        L = config.segment_len
        starts = np.concatenate(
            [np.arange(a, b - L + 1, L) for a, b in itertools.pairwise(bounds)]
        ).astype(np.int64)
        if starts.size == 0:
            raise BadInputError(
                f"X: no sequence holds a whole reservoir segment of {L} rows", field="X"
            )
        k = params.n_states
        labels = np.array([np.bincount(states[s : s + L], minlength=k).argmax() for s in starts])
        rng = np.random.default_rng(config.seed)
        chosen: list[tuple[int, int, float]] = []
        for state in range(k):
            pool = starts[labels == state]
            take = min(config.per_state, pool.size)
            w = pool.size / starts.size / max(take, 1)
            chosen.extend((int(s), state, w) for s in rng.choice(pool, take, replace=False))
        chosen.sort()
        idx = np.array([c[0] for c in chosen], dtype=np.int64)
        weights = np.array([c[2] for c in chosen])
        segs = X[idx[:, None] + np.arange(L)[None, :]]
        strata = np.array([c[1] for c in chosen], dtype=np.int64)
        weights = weights / weights.sum()
        ll = cls(segs, strata, weights, np.zeros(len(idx))).score(params).loglik.mean(axis=1)
        return cls(X=segs, strata=strata, weights=weights, reference_ll=ll)

    def reference_by_stratum(self) -> dict[int, float]:
        """The trained model's log-likelihood per sample of each stratum's rows."""
        return {
            int(k): float(self.reference_ll[self.strata == k].mean())
            for k in np.unique(self.strata)
        }

    def score(self, params: HMMParams) -> ReservoirScore:
        """Filter every segment causally under ``params`` from its stationary distribution
        (all segments at once; scaled probabilities, each step renormalised)."""
        S, L, D = self.X.shape
        if params.n_features != D:
            raise BadInputError(
                f"reservoir: {D} features, model has {params.n_features}", field="reservoir"
            )
        k = params.n_states
        log_b = ForwardFilter(params).log_emission(self.rows).reshape(S, L, k)
        m = log_b.max(axis=2)
        b = np.exp(log_b - m[:, :, None])
        trans = np.maximum(params.transmat, _TINY)
        post = np.empty((S, L, k))
        ll = np.empty((S, L))
        prev = np.broadcast_to(np.maximum(stationary_distribution(params.transmat), _TINY), (S, k))
        for t in range(L):
            joint = (prev if t == 0 else prev @ trans) * b[:, t]
            c = joint.sum(axis=1)
            with np.errstate(divide="ignore"):
                ll[:, t] = np.log(c) + m[:, t]
            prev = joint / np.where(c > 0, c, 1.0)[:, None]
            post[:, t] = prev
        return ReservoirScore(loglik=ll, posteriors=post, strata=self.strata, weights=self.weights)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the bundle (no pickle); inverse of :meth:`from_arrays`."""
        return {
            "X": self.X.copy(),
            "strata": self.strata.copy(),
            "weights": self.weights.copy(),
            "reference_ll": self.reference_ll.copy(),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, Any]) -> Reservoir:
        require_arrays(d, ("X", "strata", "weights", "reference_ll"), "reservoir arrays")
        return cls(
            X=np.asarray(d["X"], dtype=np.float64),
            strata=np.asarray(d["strata"], dtype=np.int64),
            weights=np.asarray(d["weights"], dtype=np.float64),
            reference_ll=np.asarray(d["reference_ll"], dtype=np.float64),
        )
