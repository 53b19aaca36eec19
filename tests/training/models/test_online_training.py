"""Every trained bundle carries its online-EM memory (issue 12): ``training.pipelines.train``
(and the sweep's refit, which builds its bundle with the same ``build_bundle``) stores the
statistics of the training rows and a reservoir of them, and ``fit_child`` continues it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.adapt import fit_child
from training.artifacts.registry import Registry
from training.data.catalog import MarketCatalog
from training.models.hmm import HMMConfig
from training.pipelines.feature_set import load_feature_sets
from training.pipelines.train import TrainConfig
from training.pipelines.train import train

ONE_FIT = TrainConfig(hmm=HMMConfig(k_range=(3, 3), covariance_type="diag", n_init=1))


def test_trained_bundle_carries_memory_that_adaptation_continues(
    synth_catalog: Path, tmp_path: Path
) -> None:
    catalog = MarketCatalog(synth_catalog)
    bundle, _ = train(catalog, "BTCUSDT", None, ONE_FIT)
    params = bundle.hmm_params()
    memory = bundle.online_memory()
    assert memory is not None and memory.reservoir is not None
    n_train = int(bundle.metadata["metrics"]["train_samples"])
    assert memory.stats.n_samples == n_train and memory.stats.n_updates == 0
    assert memory.stats.to_params(startprob_floor=0.0).equals(params, atol=1e-8)
    res = memory.reservoir
    assert res.X.shape[2] == params.n_features and len(np.unique(res.strata)) >= 2
    np.testing.assert_allclose(res.score(params).loglik.mean(axis=1), res.reference_ll)

    reg = Registry(tmp_path)
    parent = reg.register(bundle, alias="live")
    assert reg.load(parent).online_memory().stats.n_samples == n_train
    _, _, test_set = load_feature_sets(catalog, "BTCUSDT", None)
    out = fit_child(reg, "live", test_set.X[:300], "FEATURES_V1", alias="live")
    assert out.guard["memory_samples"] == n_train
    assert out.guard["reservoir_ll_before"] is not None and out.guard["strata_reference"]
    if out.accepted:
        child = reg.load(out.version).online_memory()
        assert child.stats.n_samples == n_train + out.guard["n_fit"]
    else:
        assert reg.resolve("live") == parent and len(reg.versions()) == 1
