"""``partial_fit``: one guarded online-EM update of a Gaussian HMM that continues its memory.

Cappé-style online EM, batched: a batch's expected statistics ``s`` (forward-backward under the
current model) are blended into the memory ``S <- (1 - g) S + g s`` and the child is the M-step
of ``S``, so states keep their index. The step ``g`` is what ``m`` per-sample Cappé steps
``gamma_i = max(1 / max_memory, i ** -step_exponent)`` (``i`` counts the rows the memory has
seen, training rows first) add up to: with the default exponent 1 the memory is the plain
average of every row seen until it holds ``max_memory`` rows, then older rows fade.

The guard refuses (``accepted=False``, the parent returned unchanged, with a reason) a child
that is invalid, that reorders states, whose guard score is lower than the parent's (no
tolerance), that has forgotten a regime (any reservoir stratum's log-likelihood per sample more
than ``max_forget`` nats below the trained model's: a budget for the whole lineage, not per
update), or whose policy actions agree with the parent's on fewer than
``min_policy_agreement`` of the reservoir rows. The guard score is what the child was built to
improve, measured on data it was not fitted on::

    score = (1 - g) * LL/sample(reservoir) + g * LL/sample(held-out window tail)

the reservoir standing for the memory (training rows of every regime), the window's last
``heldout_frac`` (scored after the rows before it) for the new data. Without a reservoir the
score is the window's alone, and nothing guards the regimes or the policy head (a bundle from
before the memory existed). Reservoir segments are weighted by what they stand for in the
training data (see :class:`Reservoir`). Imports only numpy/scipy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from training.errors import BadInputError
from training.models.hmm import DegenerateModelError
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMParams
from training.models.hmm import align_states
from training.models.hmm import check_matrix
from training.models.online._reservoir import Reservoir
from training.models.online._reservoir import ReservoirScore
from training.models.online._stats import SufficientStats
from training.models.online._stats import batch_stats

__all__ = ["Actions", "OnlineEMConfig", "OnlineMemory", "PartialFitResult", "partial_fit"]

#: ``actions(posteriors (n, K), features (n, D)) -> (n,)`` action codes of the policy head.
Actions = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class OnlineEMConfig:
    """Step schedule, inner EM iterations per batch and the guard's floors.

    ``max_memory`` (rows) bounds how long the memory grows: past it each row gets weight
    ``1 / max_memory`` (20 000 rows: ~5.5 h of 1-s samples). ``prior_samples`` is the memory
    assumed for a parent that carries no statistics and no training-row count. ``max_forget``
    (nats/sample): how far below the trained model any regime's reservoir rows may fall over
    a lineage of updates. ``min_policy_agreement``: the share of reservoir rows on which the
    policy head must take the same action under the child's posteriors as under the parent's.
    """

    step_exponent: float = 1.0
    max_memory: int = 20_000
    prior_samples: int = 3_600
    n_inner: int = 2
    heldout_frac: float = 0.2
    max_forget: float = 0.05
    min_policy_agreement: float = 0.9
    covar_floor: float = 1e-4
    startprob_floor: float = 1e-6
    min_state_mass: float = 1e-8

    def __post_init__(self) -> None:
        checks = {
            "step_exponent": 0.5 < self.step_exponent <= 1.0,
            "max_memory": self.max_memory >= 1,
            "prior_samples": self.prior_samples >= 0,
            "n_inner": self.n_inner >= 1,
            "heldout_frac": 0.0 < self.heldout_frac < 1.0,
            "max_forget": self.max_forget >= 0.0,
            "min_policy_agreement": 0.0 <= self.min_policy_agreement <= 1.0,
            "covar_floor": self.covar_floor > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise BadInputError(
                    f"OnlineEMConfig.{name}: {getattr(self, name)!r} is out of range", field=name
                )

    def step_size(self, n_seen: int, m: int) -> float:
        """``g`` for a batch of ``m`` rows after the memory has seen ``n_seen``.

        >>> c = OnlineEMConfig()
        >>> c.step_size(0, 300), round(c.step_size(9_700, 300), 4)
        (1.0, 0.03)
        >>> round(c.step_size(10**6, 300), 4)
        0.0149
        """
        i = np.arange(n_seen + 1, n_seen + m + 1, dtype=np.float64)
        gamma = np.maximum(1.0 / self.max_memory, i**-self.step_exponent)
        with np.errstate(divide="ignore"):
            return float(-np.expm1(np.log1p(-gamma).sum()))


@dataclass(frozen=True, eq=False)
class OnlineMemory:
    """What a bundle carries for online EM: the statistics and, from training, the reservoir."""

    stats: SufficientStats
    reservoir: Reservoir | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``stats.*`` and ``reservoir.*`` arrays (the bundle's ``online.npz``)."""
        out = {f"stats.{k}": v for k, v in self.stats.to_arrays().items()}
        if self.reservoir is not None:
            out.update({f"reservoir.{k}": v for k, v in self.reservoir.to_arrays().items()})
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, Any]) -> OnlineMemory:
        part = lambda p: {k[len(p) :]: v for k, v in d.items() if k.startswith(p)}  # noqa: E731
        res = part("reservoir.")
        return cls(
            stats=SufficientStats.from_arrays(part("stats.")),
            reservoir=Reservoir.from_arrays(res) if res else None,
        )


@dataclass(frozen=True)
class PartialFitResult:
    """Outcome of one :func:`partial_fit`; ``params`` is the parent when not ``accepted``.

    ``heldout_ll_*`` is the guard score (see the module doc), ``window_ll_*`` and
    ``reservoir_ll_*`` its two parts, ``strata_ll_*`` the reservoir per filtered state (NaN:
    not computed), ``policy_rows`` where the policy head was re-checked (``""``: not checked),
    ``forgetting`` the child's largest fall below the trained model over the strata.
    ``memory_samples`` is how many rows the parent's memory had seen.
    """

    params: HMMParams
    accepted: bool
    reason: str
    heldout_ll_before: float
    heldout_ll_after: float
    n_samples: int
    duration_s: float
    step_size: float = 0.0
    n_fit: int = 0
    memory_samples: int = 0
    window_ll_before: float = float("nan")
    window_ll_after: float = float("nan")
    reservoir_ll_before: float = float("nan")
    reservoir_ll_after: float = float("nan")
    strata_ll_before: dict[int, float] = field(default_factory=dict)
    strata_ll_after: dict[int, float] = field(default_factory=dict)
    strata_reference: dict[int, float] = field(default_factory=dict)
    forgetting: float = float("nan")
    policy_agreement: float = float("nan")
    policy_rows: str = ""

    def record(self) -> dict[str, Any]:
        """The JSON-able account of this update (non-finite numbers as ``None``)."""
        num = lambda v: float(v) if math.isfinite(v) else None  # noqa: E731
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "n_samples": self.n_samples,
            "n_fit": self.n_fit,
            "step_size": self.step_size,
            "memory_samples": self.memory_samples,
            "heldout_ll_before": num(self.heldout_ll_before),
            "heldout_ll_after": num(self.heldout_ll_after),
            "window_ll_before": num(self.window_ll_before),
            "window_ll_after": num(self.window_ll_after),
            "reservoir_ll_before": num(self.reservoir_ll_before),
            "reservoir_ll_after": num(self.reservoir_ll_after),
            "strata_ll_before": {str(k): num(v) for k, v in self.strata_ll_before.items()},
            "strata_ll_after": {str(k): num(v) for k, v in self.strata_ll_after.items()},
            "strata_reference": {str(k): num(v) for k, v in self.strata_reference.items()},
            "forgetting": num(self.forgetting),
            "policy_agreement": num(self.policy_agreement),
            "policy_rows": self.policy_rows,
            "duration_s": self.duration_s,
        }


def _window_ll(
    params: HMMParams, X_fit: np.ndarray, X_held: np.ndarray, conditioned: bool
) -> float:
    """Per-sample ``log p(held | fit)`` (filter over both) or ``log p(held)`` alone."""
    f = ForwardFilter(params)
    if conditioned and len(X_fit):
        return float(f.run(np.vstack([X_fit, X_held])).loglik[len(X_fit) :].mean())
    return float(f.run(X_held).loglik.mean())


def partial_fit(
    params: HMMParams,
    X: np.ndarray,
    config: OnlineEMConfig = OnlineEMConfig(),
    stats: SufficientStats | None = None,
    heldout: np.ndarray | None = None,
    reservoir: Reservoir | None = None,
    actions: Actions | None = None,
) -> tuple[PartialFitResult, SufficientStats]:
    """One guarded online-EM update from a batch ``X`` (time-ordered rows).

    ``stats`` is the parent's memory (``None``: the parent's own statistics standing for
    ``config.prior_samples`` rows). The window part of the guard is ``heldout`` if given (then
    all of ``X`` is fitted), else the last ``config.heldout_frac`` of ``X``. With ``actions``
    (the policy head) the child's actions are compared with the parent's on the reservoir rows
    (not checked without a reservoir: on the window the posteriors are meant to move). Returns
    the result and the statistics to carry into the next call (unchanged when refused).
    """
    t0 = time.perf_counter()
    X = check_matrix(X, params.n_features)
    if stats is None:
        stats = SufficientStats.from_params(params, config.prior_samples)
    elif (stats.n_states, stats.n_features, stats.covariance_type) != (
        params.n_states,
        params.n_features,
        params.covariance_type,
    ):
        raise BadInputError(
            f"stats: shape (K={stats.n_states}, D={stats.n_features}, {stats.covariance_type}) "
            f"does not match params (K={params.n_states}, D={params.n_features}, "
            f"{params.covariance_type})",
            field="stats",
        )
    if heldout is not None:
        X_fit, X_held, conditioned = X, check_matrix(heldout, params.n_features, "heldout"), False
    else:
        n_held = max(1, round(len(X) * config.heldout_frac))
        X_fit, X_held, conditioned = X[:-n_held], X[-n_held:], True
    if len(X_fit) < 2:
        raise BadInputError(f"X: {len(X)} samples leave fewer than 2 to update with", field="X")
    g = config.step_size(stats.n_samples, len(X_fit))
    w_res = 0.0 if reservoir is None else 1.0 - g

    def score(p: HMMParams) -> tuple[float, float, ReservoirScore | None]:
        window = _window_ll(p, X_fit, X_held, conditioned)
        res = None if reservoir is None else reservoir.score(p)
        total = window if res is None else w_res * res.mean + (1.0 - w_res) * window
        return total, window, res

    before, win_before, res_before = score(params)
    info: dict[str, Any] = {
        "n_samples": len(X),
        "step_size": g,
        "n_fit": len(X_fit),
        "memory_samples": stats.n_samples,
        "heldout_ll_before": before,
        "heldout_ll_after": float("nan"),
        "window_ll_before": win_before,
    }
    if res_before is not None:
        info.update(reservoir_ll_before=res_before.mean, strata_ll_before=res_before.by_stratum())
        info["strata_reference"] = reservoir.reference_by_stratum()  # type: ignore[union-attr]

    def refuse(reason: str) -> tuple[PartialFitResult, SufficientStats]:
        out = PartialFitResult(
            params=params,
            accepted=False,
            reason=reason,
            duration_s=time.perf_counter() - t0,
            **info,
        )
        return out, stats

    child = params
    new_stats = stats
    try:
        for _ in range(config.n_inner):
            s_batch, _ = batch_stats(child, X_fit)
            new_stats = stats.blend(s_batch, g, len(X_fit))
            child = new_stats.to_params(
                config.covar_floor, config.startprob_floor, config.min_state_mass
            )
    except (DegenerateModelError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return refuse(f"invalid child: {exc}")
    perm = align_states(params, child)
    if not np.array_equal(perm, np.arange(params.n_states)):
        return refuse(f"state identity changed: alignment {perm.tolist()}")
    after, win_after, res_after = score(child)
    info.update(heldout_ll_after=after, window_ll_after=win_after)
    if res_after is not None:
        info.update(reservoir_ll_after=res_after.mean, strata_ll_after=res_after.by_stratum())
    if not math.isfinite(after):
        return refuse("guard score (held-out log-likelihood) is not finite")
    if after < before:
        parts = f"window {win_before:.4f} -> {win_after:.4f}"
        if res_before is not None and res_after is not None:
            parts = f"reservoir {res_before.mean:.4f} -> {res_after.mean:.4f}, {parts}"
        return refuse(
            f"guard score fell {before - after:.4f} nats/sample ({after:.4f} < {before:.4f}; "
            f"{parts}; reservoir weight {w_res:.3f})"
        )
    if res_after is not None:
        ref, now = info["strata_reference"], info["strata_ll_after"]
        worst = max(ref, key=lambda k: ref[k] - now[k])
        info["forgetting"] = ref[worst] - now[worst]
        if info["forgetting"] > config.max_forget:
            return refuse(
                f"regime forgotten: reservoir stratum {worst} at {now[worst]:.4f} nats/sample, "
                f"{info['forgetting']:.4f} below the trained model's {ref[worst]:.4f} "
                f"(budget {config.max_forget})"
            )
    if actions is not None and res_before is not None and res_after is not None:
        # on the training rows the head was fitted on: the window's posteriors are meant to move
        k = params.n_states
        rows = reservoir.rows  # type: ignore[union-attr]
        post_p = res_before.posteriors.reshape(-1, k)
        post_c = res_after.posteriors.reshape(-1, k)
        agree = float(np.mean(actions(post_p, rows) == actions(post_c, rows)))
        info.update(policy_agreement=agree, policy_rows="reservoir")
        if agree < config.min_policy_agreement:
            return refuse(
                f"policy agreement {agree:.3f} < {config.min_policy_agreement} on the "
                "reservoir rows"
            )
    out = PartialFitResult(
        params=child, accepted=True, reason="ok", duration_s=time.perf_counter() - t0, **info
    )
    return out, new_stats
