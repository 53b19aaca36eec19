"""Serving fixtures: two small real bundles (K=3 diag HMM + XGBoost head) in a tmp registry, and
one ``ray start --head`` with Serve running that the Serve test modules deploy their
application on in turn (a Ray head and Serve cost 30-50 s to start on the loaded test machine;
an application a few)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from serving.testing import make_bundle
from tests.serve_setup import ServeHead
from tests.serve_setup import running_serve_head
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


@pytest.fixture(scope="package")
def serve_head() -> Iterator[ServeHead]:
    """The package's Ray head; each module deploys its own application on it (replacing the
    previous one) and deletes it after."""
    with running_serve_head() as head:
        yield head
