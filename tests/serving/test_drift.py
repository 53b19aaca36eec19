"""DriftMonitor: KL against training histograms and ADWIN on the served log-likelihood."""

from __future__ import annotations

import numpy as np
import pytest

from serving.drift import DriftConfig
from serving.drift import DriftMonitor
from serving.drift import kl_divergence
from serving.model import InferenceModel


def feed(monitor: DriftMonitor, model: InferenceModel, X: np.ndarray) -> None:
    prev = None
    for x in X:
        r = model.infer(x, prev, "FEATURES_V1")
        prev = r.log_posterior
        monitor.update(x, r.loglik)


def test_kl_divergence_values() -> None:
    assert kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    assert kl_divergence(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0


def test_in_distribution_quiet_shifted_drifts(bundles) -> None:
    bundle, X = bundles[0]
    model = InferenceModel(bundle)
    mon = DriftMonitor(bundle, DriftConfig(window=600, min_samples=300))
    feed(mon, model, X[:299])
    empty = mon.report()
    assert empty.kl == {} and empty.max_kl is None and empty.n_samples == 299
    feed(mon, model, X[299:900])
    quiet = mon.report()
    assert set(quiet.kl) == set(bundle.feature_schema().names)
    assert quiet.max_kl is not None and quiet.max_kl < 0.2 and quiet.drifted == []
    assert not quiet.adapting and quiet.n_window == 600 and not quiet.triggered

    shifted = X[900:1500].copy()
    shifted[:, 2] += 4.0  # one feature moves far from training
    feed(mon, model, shifted)
    loud = mon.report()
    name = bundle.feature_schema().names[2]
    assert loud.drifted == [name] and loud.kl[name] > 1.0
    assert loud.adapting and loud.loglik_changes >= 1  # log-likelihood fell: ADWIN saw it
    assert loud.triggered and loud.reasons == (f"kl:{name}", "adwin:loglik")
    assert loud.loglik_ref is not None and loud.loglik_mean < loud.loglik_ref - 3.0
    assert loud.score == loud.max_kl
    np.testing.assert_array_equal(mon.window(), shifted)  # the ring buffer: the last 600 rows
    mon.reset()
    assert mon.report().n_samples == 0 and not mon.adapting and mon.window().shape == (0, 10)


def test_in_distribution_regime_switches_do_not_trigger(bundles) -> None:
    """ADWIN sees the level move as regimes switch; only a drop below baseline counts."""
    bundle, X = bundles[0]
    model = InferenceModel(bundle)
    mon = DriftMonitor(bundle, DriftConfig(window=400, min_samples=150))
    for x in X:
        mon.update(x, model.infer(x, None, "FEATURES_V1").loglik)
    rep = mon.report()
    assert not rep.triggered and rep.reasons == () and rep.drifted == []


def test_bad_config_and_missing_histograms(bundles) -> None:
    with pytest.raises(ValueError, match="min_samples"):
        DriftConfig(window=10, min_samples=20)
    bundle = bundles[0][0]
    from dataclasses import replace

    with pytest.raises(ValueError, match="no training histogram"):
        DriftMonitor(replace(bundle, histograms={}))
