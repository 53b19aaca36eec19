"""Pipelines: turning catalog symbol-days into registered models.

:mod:`~training.pipelines.feature_set` (the ready samples of symbol-days and the holdout),
:mod:`~training.pipelines.train` (fit, evaluate and bundle one model) and
:mod:`~training.pipelines.sweep` (the Ray Tune walk-forward search). Their commands are
``nhmm train`` and ``nhmm sweep`` (:mod:`training.cli`). Import from the modules.
"""

__all__ = ["feature_set", "sweep", "train"]
