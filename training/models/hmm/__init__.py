"""Gaussian HMM regimes: parameters, the causal forward filter, fitting and evaluation.

- :mod:`~training.models.hmm.params`: :class:`HMMParams` (plain arrays, validated, no pickle).
- :mod:`~training.models.hmm.filter`: :class:`ForwardFilter`, the causal filter Serve replicas,
  the node and training all run, and :func:`log_likelihood`.
- :mod:`~training.models.hmm.evaluate`: BIC, posterior entropy, canonical order, alignment.
- :mod:`~training.models.hmm.fit`: :func:`fit_hmm` with hmmlearn (several inits per K).

Importing this package loads numpy/scipy only: the fitting names (:class:`HMMConfig`,
:class:`HMMFit`, :func:`fit_hmm`) are loaded on first use, and hmmlearn only inside
:func:`fit_hmm`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING
from typing import Any

from training.models.hmm._arrays import check_matrix
from training.models.hmm.evaluate import align_states
from training.models.hmm.evaluate import best_label_alignment
from training.models.hmm.evaluate import bic
from training.models.hmm.evaluate import canonical_order
from training.models.hmm.evaluate import canonicalize
from training.models.hmm.evaluate import posterior_entropy
from training.models.hmm.evaluate import regime_accuracy
from training.models.hmm.filter import FilterRun
from training.models.hmm.filter import FilterStep
from training.models.hmm.filter import ForwardFilter
from training.models.hmm.filter import log_likelihood
from training.models.hmm.params import CovarianceType
from training.models.hmm.params import DegenerateModelError
from training.models.hmm.params import HMMParams
from training.models.hmm.params import floor_covars
from training.models.hmm.params import n_free_params
from training.models.hmm.params import sample_hmm

if TYPE_CHECKING:
    from training.models.hmm.fit import HMMConfig
    from training.models.hmm.fit import HMMFit
    from training.models.hmm.fit import fit_hmm

__all__ = [
    "CovarianceType",
    "DegenerateModelError",
    "FilterRun",
    "FilterStep",
    "ForwardFilter",
    "HMMConfig",
    "HMMFit",
    "HMMParams",
    "align_states",
    "best_label_alignment",
    "bic",
    "canonical_order",
    "canonicalize",
    "check_matrix",
    "fit_hmm",
    "floor_covars",
    "log_likelihood",
    "n_free_params",
    "posterior_entropy",
    "regime_accuracy",
    "sample_hmm",
]

_LAZY = {"HMMConfig", "HMMFit", "fit_hmm"}


def __getattr__(name: str) -> Any:
    """Load the fitting names from :mod:`training.models.hmm.fit` on first use."""
    if name in _LAZY:
        value = getattr(import_module("training.models.hmm.fit"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
