"""What the node and Serve replicas import stays light: the HMM filter, online EM and the feature
engine load numpy/scipy only, and the ``nhmm`` train/sweep/features commands nothing heavy."""

from __future__ import annotations

import pytest

from tests.import_probe import HEAVY
from tests.import_probe import heavy_imports

#: Fitting libraries: only ``training.models.hmm.fit_hmm`` may load them, inside the call.
FITTING = ("hmmlearn", "sklearn", "pyarrow", "pandas", "nautilus_trader", "ray", "xgboost")


@pytest.mark.parametrize(
    "module", ["training.models.hmm", "training.models.online", "training.features"]
)
def test_filter_online_em_and_feature_engine_import_no_fitting_library(module: str) -> None:
    assert heavy_imports(module, FITTING) == []


@pytest.mark.parametrize(
    "module", ["training.cli.train", "training.cli.sweep", "training.cli.features"]
)
def test_command_modules_are_light_at_import(module: str) -> None:
    assert heavy_imports(module, HEAVY) == []
