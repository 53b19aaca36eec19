"""A Ray Tune walk-forward search over HMM + policy hyper-parameters (``nhmm sweep``).

:mod:`~training.pipelines.sweep.space` (search space, settings, seeded trials),
:mod:`~training.pipelines.sweep.plan` (symbol-days, cached features, walk-forward folds),
:mod:`~training.pipelines.sweep.trials` (one trial's fold-by-fold work, result rows, the winner)
and :mod:`~training.pipelines.sweep.run` (Tune or a plain loop, results, refit and register).
Ray is imported only inside the functions that need it.
"""

from __future__ import annotations

from training.pipelines.sweep.plan import SweepPlan
from training.pipelines.sweep.plan import plan_sweep
from training.pipelines.sweep.plan import walk_forward_folds
from training.pipelines.sweep.run import SweepResult
from training.pipelines.sweep.run import run_sequential
from training.pipelines.sweep.run import run_sweep
from training.pipelines.sweep.space import SearchSpace
from training.pipelines.sweep.space import SweepConfig
from training.pipelines.sweep.space import sample_trials
from training.pipelines.sweep.space import train_config
from training.pipelines.sweep.trials import REJECTED_SCORE
from training.pipelines.sweep.trials import REPORTED
from training.pipelines.sweep.trials import NoUsableTrialError
from training.pipelines.sweep.trials import best_row
from training.pipelines.sweep.trials import conservative_score
from training.pipelines.sweep.trials import trial_reports
from training.pipelines.sweep.trials import trial_row

__all__ = [
    "REJECTED_SCORE",
    "REPORTED",
    "NoUsableTrialError",
    "SearchSpace",
    "SweepConfig",
    "SweepPlan",
    "SweepResult",
    "best_row",
    "conservative_score",
    "plan_sweep",
    "run_sequential",
    "run_sweep",
    "sample_trials",
    "train_config",
    "trial_reports",
    "trial_row",
    "walk_forward_folds",
]
