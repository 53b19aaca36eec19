"""training.models.online: stepwise online EM that adapts, keeps state identity, and is guarded.

The memory and reservoir guards (issue 12) are in ``test_online_memory.py``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM

from training.models.hmm import HMMConfig
from training.models.hmm import HMMParams
from training.models.hmm import align_states
from training.models.hmm import fit_hmm
from training.models.hmm import log_likelihood
from training.models.hmm import sample_hmm
from training.models.online import OnlineEMConfig
from training.models.online import SufficientStats
from training.models.online import batch_stats
from training.models.online import partial_fit
from training.models.online import stationary_distribution

K, D = 3, 3
SHIFT = np.array([1.0, -0.6, 0.4])


def params(shift: np.ndarray | None = None, cov_type: str = "full") -> HMMParams:
    means = np.array([[0.0, 0.0, 0.0], [1.5, 1.0, 0.0], [0.0, 1.5, 2.0]])
    if shift is not None:
        means = means + shift
    T = np.full((K, K), 0.02 / (K - 1))
    np.fill_diagonal(T, 0.98)
    covs = np.stack([0.5 * np.eye(D), 0.4 * np.eye(D), 0.6 * np.eye(D)])
    if cov_type == "diag":
        covs = np.diagonal(covs, axis1=1, axis2=2)
    return HMMParams(np.full(K, 1 / K), T, means, covs, cov_type)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shift_setup() -> dict[str, object]:
    """Stale model fitted before a regime mean shift, a full refit after it, and test data."""
    cfg = HMMConfig(k_range=(K, K), n_init=2, seed=3)
    X_pre, _ = sample_hmm(params(), 4000, seed=1)
    X_post, _ = sample_hmm(params(SHIFT), 6000, seed=2)
    X_test, _ = sample_hmm(params(SHIFT), 3000, seed=3)
    stale = fit_hmm(X_pre, config=cfg).params
    refit = fit_hmm(X_post, config=cfg).params
    return {"stale": stale, "refit": refit, "X_post": X_post, "X_test": X_test}


def test_twenty_batches_close_most_of_the_gap_to_a_refit(shift_setup: dict) -> None:
    stale, refit = shift_setup["stale"], shift_setup["refit"]
    X_post, X_test = shift_setup["X_post"], shift_setup["X_test"]
    ll = lambda p: log_likelihood(p, X_test) / len(X_test)  # noqa: E731
    ll_stale, ll_refit = ll(stale), ll(refit)
    assert ll_refit - ll_stale > 0.5  # the shift really hurts the stale model
    cur, stats = stale, None
    accepted = 0
    for b in range(20):
        res, stats = partial_fit(cur, X_post[b * 300 : (b + 1) * 300], stats=stats)
        accepted += res.accepted
        if res.accepted:
            # same states, same order: the child aligns to its parent as the identity
            assert align_states(cur, res.params).tolist() == list(range(K))
            assert res.heldout_ll_after >= res.heldout_ll_before - 0.05
        assert res.n_samples == 300 and res.duration_s > 0
        cur = res.params
    assert accepted >= 18
    assert stats.n_updates == accepted
    closed = (ll(cur) - ll_stale) / (ll_refit - ll_stale)
    assert closed >= 0.80
    assert align_states(stale, cur).tolist() == list(range(K))


def test_guard_refuses_update_that_hurts_heldout() -> None:
    parent = params()
    # a memory of an hour of rows (statistics with n_samples=0 are no memory: step 1)
    stats = SufficientStats.from_params(parent, n_samples=3600)
    junk = np.random.default_rng(0).normal(6.0, 0.3, size=(300, D))
    heldout, _ = sample_hmm(parent, 200, seed=5)
    res, out = partial_fit(parent, junk, stats=stats, heldout=heldout)
    assert not res.accepted
    assert "guard score fell" in res.reason
    assert res.params is parent
    assert out is stats
    assert res.heldout_ll_after < res.heldout_ll_before - 0.05
    # a batch that helps on the held-out rows is accepted (no tolerance: a batch from the model
    # itself may be refused for a sampling wobble of 1e-4 nats, so it no longer stands in here)
    good, _ = sample_hmm(params(SHIFT), 300, seed=6)
    shifted_heldout, _ = sample_hmm(params(SHIFT), 200, seed=7)
    ok, new_stats = partial_fit(parent, good, stats=stats, heldout=shifted_heldout)
    assert ok.accepted and ok.reason == "ok" and new_stats.n_updates == 1
    assert not ok.params.equals(parent)


def test_guard_refuses_state_reordering_and_invalid_children() -> None:
    parent = params()
    swapped = SufficientStats.from_params(parent.permute([1, 0, 2]))
    # a long memory (the step decays with the rows seen): the child stays near the swapped stats
    swapped = SufficientStats.from_arrays({**swapped.to_arrays(), "n_samples": np.array(10**6)})
    X, _ = sample_hmm(parent, 300, seed=8)
    res, out = partial_fit(parent, X, stats=swapped)
    assert not res.accepted and "state identity changed" in res.reason
    assert res.params is parent and out is swapped
    broken = SufficientStats.from_arrays(
        {
            **SufficientStats.from_params(parent, n_samples=10**6).to_arrays(),
            "trans": np.full((K, K), -1e6),
        }
    )
    res, out = partial_fit(parent, X, stats=broken)
    assert not res.accepted and res.reason.startswith("invalid child: transmat: row 0")
    assert res.params is parent and out is broken


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_stats_from_params_reproduce_params_and_roundtrip(cov_type: str) -> None:
    p = params(cov_type=cov_type)
    s = SufficientStats.from_params(p)
    q = s.to_params(startprob_floor=0.0)
    assert q.equals(p, atol=1e-10)
    buf = io.BytesIO()
    np.savez(buf, **s.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        back = SufficientStats.from_arrays(dict(z))
    assert back.to_params(startprob_floor=0.0).equals(p, atol=1e-10)
    pi = stationary_distribution(p.transmat)
    np.testing.assert_allclose(pi @ p.transmat, pi, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Setting the shape:DeprecationWarning")
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_batch_em_step_equals_hmmlearn_em_iteration(cov_type: str) -> None:
    """With step size 1, one update is exactly one Baum-Welch iteration (hmmlearn, no priors)."""
    p = params(cov_type=cov_type)
    start = HMMParams(p.startprob, p.transmat, p.means + 0.3, p.covars, p.covariance_type)
    X, _ = sample_hmm(p, 500, seed=9)
    s, loglik = batch_stats(start, X)
    ours = s.to_params(covar_floor=1e-12, startprob_floor=0.0)
    m = GaussianHMM(
        n_components=K, covariance_type=cov_type, n_iter=1, init_params="", params="stmc",
        covars_prior=0.0, covars_weight=0.0 if cov_type == "diag" else 1.0, min_covar=1e-12,
    )  # fmt: skip
    m.startprob_, m.transmat_, m.means_ = start.startprob, start.transmat, start.means
    m.covars_ = start.covars
    assert loglik == pytest.approx(m.score(X), rel=1e-10)
    m.fit(X)
    np.testing.assert_allclose(ours.transmat, m.transmat_, atol=1e-9)
    np.testing.assert_allclose(ours.means, m.means_, atol=1e-9)
    theirs_cov = m.covars_ if cov_type == "full" else np.diagonal(m.covars_, axis1=1, axis2=2)
    np.testing.assert_allclose(ours.covars, theirs_cov, atol=1e-9)
    np.testing.assert_allclose(ours.startprob, m.startprob_, atol=1e-9)


def test_bad_inputs() -> None:
    p = params()
    with pytest.raises(ValueError, match="stats: shape"):
        partial_fit(
            p, np.zeros((50, D)), stats=SufficientStats.from_params(params(cov_type="diag"))
        )
    X = np.zeros((50, D))
    X[10, 0] = np.nan
    with pytest.raises(ValueError, match="row 10, column 0"):
        partial_fit(p, X)
    with pytest.raises(ValueError, match="step_exponent"):
        OnlineEMConfig(step_exponent=0.4)
