"""What a sweep searches and how: the search space, the sweep settings, the seeded trials.

Trials are drawn up front from a seeded numpy generator, so the same seed gives the same trials
in the same order; :func:`train_config` turns one into the :class:`TrainConfig` a fold fits.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

import numpy as np

from training.errors import BadInputError
from training.models.hmm import HMMConfig
from training.models.labels import LabelConfig
from training.models.policy import PolicyConfig
from training.pipelines.train import TrainConfig

__all__ = ["SearchSpace", "SweepConfig", "sample_trials", "train_config"]


@dataclass(frozen=True)
class SearchSpace:
    """Choices (tuples) and ``(lo, hi)`` ranges the trials are drawn from."""

    k: tuple[int, ...] = (3, 4, 5)
    covariance_type: tuple[str, ...] = ("full", "diag")
    n_init: tuple[int, ...] = (1, 2, 3)
    max_depth: tuple[int, ...] = (2, 3, 4, 6)
    eta: tuple[float, float] = (0.03, 0.3)  # log-uniform
    n_estimators: tuple[int, ...] = (50, 100, 200)
    min_child_weight: tuple[float, ...] = (1.0, 5.0, 10.0)
    threshold: tuple[float, float] = (0.4, 0.7)  # uniform; buy and sell alike
    horizon_s: tuple[float, ...] = (60.0, 120.0, 300.0, 600.0)

    def check_horizons(self, interval_s: float) -> None:
        """Every horizon a whole number (>= 1) of samples ``interval_s`` apart: a label looks a
        whole number of samples ahead, so on 1m bars a 30 s horizon would silently be a bar.

        >>> SearchSpace(horizon_s=(60.0, 120.0)).check_horizons(60.0)
        >>> SearchSpace(horizon_s=(30.0, 60.0)).check_horizons(60.0)
        Traceback (most recent call last):
        ...
        training.errors.BadInputError: space.horizon_s: [30.0] are not multiples of the 60 s sample interval (1m bars: use multiples of 60)
        """
        bad = [
            h
            for h in self.horizon_s
            if h < interval_s or abs(h / interval_s - round(h / interval_s)) > 1e-9
        ]
        if bad:
            raise BadInputError(
                f"space.horizon_s: {bad} are not multiples of the {interval_s:g} s sample "
                f"interval (1m bars: use multiples of 60)",
                field="space.horizon_s",
            )


@dataclass(frozen=True)
class SweepConfig:
    """What to search and how; defaults sweep every symbol and day in the catalog.

    The last ``test_days`` days are the test period: never seen by the search nor by the
    refit's model choice. ``bars="1m"`` sweeps FEATURES_BARS_V1 of the catalog's 1m klines
    instead of FEATURES_V1 of the book and trades. ``maker_bps``/``taker_bps``/``fee_tier`` override the instrument's
    fees in the cost model (labels and the simulated objective alike). ``reuse_actors``: a
    finished trial's actor takes the next trial (a fresh one re-imports xgboost and hmmlearn,
    seconds per trial); ``False`` gives every trial its own actor, so the first trials start
    at once on every free CPU of the cluster whatever their speed. Neither changes a result.
    """

    symbols: tuple[str, ...] = ()
    days: tuple[datetime.date, ...] = ()
    num_samples: int = 16
    seed: int = 0
    space: SearchSpace = field(default_factory=SearchSpace)
    scheduler: Literal["asha", "fifo"] = "asha"
    max_concurrent: int | None = None
    min_occupancy: float = 0.01
    hmm_n_iter: int = 100
    maker_bps: float | None = None
    taker_bps: float | None = None
    fee_tier: str | None = None
    test_days: int = 1
    bars: str | None = None
    reuse_actors: bool = True

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise BadInputError(f"SweepConfig.num_samples must be >= 1, got {self.num_samples}")
        if self.scheduler not in ("asha", "fifo"):
            raise BadInputError(
                f"SweepConfig.scheduler must be asha or fifo, got {self.scheduler!r}"
            )
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise BadInputError("SweepConfig.max_concurrent must be >= 1")
        if self.test_days < 1:
            raise BadInputError(f"SweepConfig.test_days must be >= 1, got {self.test_days}")
        if self.bars not in (None, "1m"):
            raise BadInputError(
                f"SweepConfig.bars must be None or '1m', got {self.bars!r}", field="bars"
            )


def sample_trials(num_samples: int, seed: int, space: SearchSpace) -> list[dict[str, Any]]:
    """``num_samples`` trial configs drawn with ``numpy.random.default_rng(seed)``.

    >>> a = sample_trials(3, 7, SearchSpace())
    >>> a == sample_trials(3, 7, SearchSpace()), [t["trial"] for t in a]
    (True, ['t000', 't001', 't002'])
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_samples):
        lo, hi = space.eta
        tlo, thi = space.threshold
        out.append(
            {
                "trial": f"t{i:03d}",
                "k": int(rng.choice(space.k)),
                "covariance_type": str(rng.choice(space.covariance_type)),
                "n_init": int(rng.choice(space.n_init)),
                "hmm_seed": int(rng.integers(0, 2**31 - 1)),
                "max_depth": int(rng.choice(space.max_depth)),
                "eta": round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 5),
                "n_estimators": int(rng.choice(space.n_estimators)),
                "min_child_weight": float(rng.choice(space.min_child_weight)),
                "threshold": round(float(rng.uniform(tlo, thi)), 4),
                "horizon_s": float(rng.choice(space.horizon_s)),
                "policy_seed": int(rng.integers(0, 2**31 - 1)),
            }
        )
    return out


def train_config(trial: dict[str, Any], settings: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` of one trial's config dict under the sweep's ``settings``
    (``costs``: the cost model, ``rules``: the strategy's rules, ``hmm_n_iter``); the rules hold
    for the trial's label horizon."""
    hmm_n_iter = settings["hmm_n_iter"]
    return TrainConfig(
        hmm=HMMConfig(
            k_range=(trial["k"], trial["k"]),
            covariance_type=trial["covariance_type"],
            n_init=trial["n_init"],
            n_iter=hmm_n_iter,
            seed=trial["hmm_seed"],
        ),
        policy=PolicyConfig(
            max_depth=trial["max_depth"],
            eta=trial["eta"],
            n_estimators=trial["n_estimators"],
            min_child_weight=trial["min_child_weight"],
            buy_threshold=trial["threshold"],
            sell_threshold=trial["threshold"],
            subsample=1.0,  # not searched: every row, as bench_null measured the sweep
            seed=trial["policy_seed"],
        ),
        # the sweep searches the head and its threshold; its labels demand the round trip only
        # (nhmm train's 2 bp margin was chosen for its one fixed head, bench/bench_head.py)
        labels=LabelConfig(horizon_s=trial["horizon_s"], costs=settings["costs"], min_edge_bps=0.0),
        rules=dataclasses.replace(settings["rules"], hold_s=trial["horizon_s"]),
    )
