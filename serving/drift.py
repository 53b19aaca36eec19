"""Drift monitoring: live feature histograms against the bundle's training histograms (KL), and
ADWIN (river) on the per-sample log-likelihood ``log p(x_t | x_<t)``.

A monitor sees the samples of one model version; ``max_kl`` is reported once ``min_samples``
live samples are in the window, ``adapting`` once ADWIN has flagged a change in the
log-likelihood stream (it stays set until :meth:`DriftMonitor.reset`, e.g. after a refit).
``triggered`` (any KL over threshold, or an ADWIN change to a level ``loglik_drop`` nats below
the monitor's baseline) is what starts an adaptation; the window
(:meth:`DriftMonitor.window`) is what it refits on.

>>> kl_divergence(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
0.0
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from river import drift as river_drift

from training.artifacts.bundle import ModelBundle
from training.artifacts.histograms import histogram_counts
from training.errors import BadInputError
from training.errors import NotFoundError


class NoDriftReferenceError(NotFoundError, ValueError):
    """The bundle holds no usable training histogram for a feature: nothing to measure drift
    against (also a ``ValueError``, as it always was)."""


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """``KL(p || q)`` in nats for probability vectors (``q > 0`` where ``p > 0``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


@dataclass(frozen=True)
class DriftConfig:
    """Window of live samples, smoothing, when KL counts, and ADWIN's confidence."""

    window: int = 2000
    min_samples: int = 200
    alpha: float = 0.5
    kl_threshold: float = 0.5
    adwin_delta: float = 0.002
    loglik_drop: float = 3.0

    def __post_init__(self) -> None:
        if self.window < 1 or not 1 <= self.min_samples <= self.window:
            raise BadInputError(
                "DriftConfig: need window >= 1 and 1 <= min_samples <= window", field="min_samples"
            )
        if self.alpha <= 0 or self.kl_threshold <= 0 or not 0 < self.adwin_delta < 1:
            raise BadInputError("DriftConfig: alpha, kl_threshold > 0 and adwin_delta in (0, 1)")
        if self.loglik_drop <= 0:
            raise BadInputError(
                "DriftConfig: loglik_drop must be > 0 (nats per sample)", field="loglik_drop"
            )


@dataclass(frozen=True)
class DriftReport:
    """One snapshot: per-feature KL (live || training), the max, ADWIN state."""

    n_samples: int
    n_window: int
    kl: dict[str, float]
    max_kl: float | None
    drifted: list[str]
    loglik_changes: int
    loglik_mean: float | None
    adapting: bool
    score: float = 0.0
    triggered: bool = False
    reasons: tuple[str, ...] = ()
    loglik_ref: float | None = None


class DriftMonitor:
    """Per-feature KL against the bundle's training histograms, ADWIN on the log-likelihood."""

    def __init__(self, bundle: ModelBundle, config: DriftConfig = DriftConfig()) -> None:
        self.config = config
        self.names = list(bundle.feature_schema().names)
        missing = [n for n in self.names if n not in bundle.histograms]
        if missing:
            raise NoDriftReferenceError(f"bundle histograms: no training histogram for {missing}")
        self._edges = [np.asarray(bundle.histograms[n]["edges"]) for n in self.names]
        self._ref: list[np.ndarray] = []
        for n, edges in zip(self.names, self._edges, strict=True):
            counts = np.asarray(bundle.histograms[n]["counts"], dtype=np.float64)
            if counts.shape != (len(edges) - 1,):
                raise NoDriftReferenceError(f"bundle histograms: {n}: counts do not match edges")
            self._ref.append((counts + config.alpha) / (counts.sum() + config.alpha * len(counts)))
        self._rows: deque[np.ndarray] = deque(maxlen=config.window)
        self.reset()

    def reset(self) -> None:
        """Forget live samples and the ADWIN state (after a refit or a promote)."""
        self._rows.clear()
        self._adwin = river_drift.ADWIN(delta=self.config.adwin_delta)
        self.n_samples = 0
        self.loglik_changes = 0
        self._ref_sum = 0.0

    def update(self, x: np.ndarray, loglik: float) -> None:
        """Add one served sample (features as inferred) and its log-likelihood."""
        self._rows.append(np.asarray(x, dtype=np.float64))
        self._adwin.update(float(loglik))
        if self._adwin.drift_detected:
            self.loglik_changes += 1
        if self.n_samples < self.config.min_samples:
            self._ref_sum += float(loglik)
        self.n_samples += 1

    @property
    def loglik_ref(self) -> float | None:
        """Mean log-likelihood of the first ``min_samples`` samples (the monitor's baseline)."""
        if self.n_samples < self.config.min_samples:
            return None
        return self._ref_sum / self.config.min_samples

    def loglik_dropped(self) -> bool:
        """ADWIN saw a change and its current level is ``loglik_drop`` nats below the
        baseline: the model explains recent data worse (regime switches inside the training
        distribution move the level too, but not that far)."""
        ref = self.loglik_ref
        return (
            self.loglik_changes > 0
            and ref is not None
            and ref - float(self._adwin.estimation) > self.config.loglik_drop
        )

    @property
    def adapting(self) -> bool:
        return self.loglik_changes > 0

    def kl(self) -> dict[str, float]:
        """Per-feature ``KL(live || training)`` over the window (empty below ``min_samples``)."""
        if len(self._rows) < self.config.min_samples:
            return {}
        X = np.vstack(self._rows)
        a = self.config.alpha
        out: dict[str, float] = {}
        for j, name in enumerate(self.names):
            c = histogram_counts(self._edges[j], X[:, j]).astype(np.float64)
            live = (c + a) / (c.sum() + a * len(c))
            out[name] = kl_divergence(live, self._ref[j])
        return out

    def max_kl(self) -> float | None:
        kl = self.kl()
        return max(kl.values()) if kl else None

    def window(self) -> np.ndarray:
        """The recent feature rows (the ring buffer, oldest first), ``(n_window, n_features)``."""
        if not self._rows:
            return np.empty((0, len(self.names)))
        return np.vstack(self._rows)

    def reasons(self, kl: dict[str, float] | None = None) -> tuple[str, ...]:
        """Why this window counts as drifted: ``kl:<feature>`` over threshold, ``adwin:loglik``
        (:meth:`loglik_dropped`)."""
        kl = self.kl() if kl is None else kl
        out = [f"kl:{n}" for n, v in sorted(kl.items()) if v > self.config.kl_threshold]
        if self.loglik_dropped():
            out.append("adwin:loglik")
        return tuple(out)

    def report(self) -> DriftReport:
        kl = self.kl()
        reasons = self.reasons(kl)
        return DriftReport(
            n_samples=self.n_samples,
            n_window=len(self._rows),
            kl=kl,
            max_kl=max(kl.values()) if kl else None,
            drifted=sorted(n for n, v in kl.items() if v > self.config.kl_threshold),
            loglik_changes=self.loglik_changes,
            loglik_mean=float(self._adwin.estimation) if self.n_samples else None,
            adapting=self.adapting,
            score=max(kl.values()) if kl else 0.0,
            triggered=bool(reasons),
            reasons=reasons,
            loglik_ref=self.loglik_ref,
        )
