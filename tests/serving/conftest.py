"""Serving fixtures: two small real bundles (K=3 diag HMM + XGBoost head) in a tmp registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.testing import make_bundle
from training.artifacts.bundle import ModelBundle
from training.artifacts.registry import Registry


@pytest.fixture(scope="session")
def bundles() -> list[tuple[ModelBundle, np.ndarray]]:
    """Two different bundles (seeds 1 and 2) with their training data and online-EM memory."""
    return [make_bundle(1), make_bundle(2)]


@pytest.fixture(scope="module")
def registry_root(
    tmp_path_factory: pytest.TempPathFactory, bundles: list[tuple[ModelBundle, np.ndarray]]
) -> Path:
    """A fresh registry per test module: v0001 (live) and v0002 (candidate)."""
    root = tmp_path_factory.mktemp("serving_registry")
    reg = Registry(root)
    reg.register(bundles[0][0])
    reg.promote()
    reg.register(bundles[1][0])
    return root
