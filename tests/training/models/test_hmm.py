"""training/hmm.py: multi-init fit, canonical order, causal forward filter, degenerate guards."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM

from training.models.hmm import DegenerateModelError
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMConfig
from training.models.hmm import HMMFit
from training.models.hmm import HMMParams
from training.models.hmm import align_states
from training.models.hmm import best_label_alignment
from training.models.hmm import bic
from training.models.hmm import canonicalize
from training.models.hmm import fit_hmm
from training.models.hmm import log_likelihood
from training.models.hmm import n_free_params
from training.models.hmm import posterior_entropy
from training.models.hmm import regime_accuracy
from training.models.hmm import sample_hmm

K, D = 3, 3


def true_params() -> HMMParams:
    """Three well separated but overlapping regimes, sticky transitions; feature 2 ~ 'vol'."""
    means = np.array([[0.0, 0.0, 0.0], [1.5, 1.0, 0.8], [0.0, 1.5, 2.0]])
    rot = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.0]])
    covs = np.stack([0.5 * rot, 0.4 * np.eye(D), 0.6 * rot])
    T = np.full((K, K), 0.03 / (K - 1))
    np.fill_diagonal(T, 0.97)
    return HMMParams(np.full(K, 1.0 / K), T, means, covs)


@pytest.fixture(scope="session")
def sampled() -> tuple[np.ndarray, np.ndarray]:
    return sample_hmm(true_params(), 3000, seed=7)


@pytest.fixture(scope="session")
def fitted(sampled: tuple[np.ndarray, np.ndarray]) -> HMMFit:
    X, _ = sampled
    return fit_hmm(X, config=HMMConfig(k_range=(2, 4), n_init=3, seed=1, order_feature=2))


def _hmmlearn_model(params: HMMParams) -> GaussianHMM:
    m = GaussianHMM(
        n_components=params.n_states, covariance_type=params.covariance_type, init_params=""
    )
    m.startprob_, m.transmat_, m.means_ = params.startprob, params.transmat, params.means
    m.covars_ = params.covars
    return m


def test_fit_picks_true_k_by_bic_and_filtered_states_match_ground_truth(
    sampled: tuple[np.ndarray, np.ndarray], fitted: HMMFit
) -> None:
    X, truth = sampled
    assert fitted.k == K
    assert len(fitted.candidates) == 9 and all(c["ok"] for c in fitted.candidates)
    chosen = min((c for c in fitted.candidates), key=lambda c: c["bic"])
    assert chosen["k"] == K and fitted.bic == pytest.approx(chosen["bic"])
    run = ForwardFilter(fitted.params).run(X)
    _, acc = best_label_alignment(truth, run.states, fitted.k)
    assert acc >= 0.80
    # the model's likelihood is at least close to the true model's on its own data
    assert fitted.loglik >= log_likelihood(true_params(), X) - 5.0
    assert fitted.n_params == n_free_params(3, 3, "full") == 2 + 6 + 9 + 18
    assert fitted.occupancy.sum() == pytest.approx(1.0)


def test_fit_returns_canonical_order_by_order_feature(fitted: HMMFit) -> None:
    m = fitted.params.means[:, 2]
    assert np.all(np.diff(m) > 0)
    # the true model's canonical order by feature 2 is (0, 1, 2); aligned means are close
    perm = align_states(canonicalize(true_params(), 2), fitted.params)
    assert perm.tolist() == [0, 1, 2]
    assert np.abs(fitted.params.means - true_params().means).max() < 0.2


def test_canonicalize_default_orders_by_mean_norm() -> None:
    p = true_params().permute([2, 0, 1])
    c = canonicalize(p)
    norms = np.linalg.norm(c.means, axis=1)
    assert np.all(np.diff(norms) >= 0)
    assert c.equals(true_params(), atol=0.0)


def test_align_states_recovers_a_permutation_and_loglik_is_invariant(
    sampled: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = sampled
    p = true_params()
    shuffled = p.permute([1, 2, 0])
    perm = align_states(p, shuffled)
    assert shuffled.permute(perm).equals(p)
    assert log_likelihood(shuffled, X[:500]) == pytest.approx(log_likelihood(p, X[:500]), rel=1e-12)


def test_filter_is_causal_and_differs_from_smoothed(sampled: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = sampled
    X = X[:600]
    p = true_params()
    f = ForwardFilter(p)
    base = f.run(X)
    t = 300
    X2 = X.copy()
    X2[t + 1 :] = np.random.default_rng(0).normal(5.0, 3.0, size=X2[t + 1 :].shape)
    changed = f.run(X2)
    np.testing.assert_array_equal(base.posteriors[: t + 1], changed.posteriors[: t + 1])
    np.testing.assert_array_equal(base.loglik[: t + 1], changed.loglik[: t + 1])
    assert np.abs(base.posteriors[t + 1 :] - changed.posteriors[t + 1 :]).max() > 0.1
    smoothed = _hmmlearn_model(p).predict_proba(X)
    diff = np.abs(smoothed - base.posteriors).max(axis=1)
    assert diff[-1] < 1e-9  # at the last sample filtering and smoothing coincide
    assert (diff > 0.05).mean() > 0.02  # elsewhere smoothing used the future


def test_step_loop_equals_run_and_lengths_restart(sampled: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = sampled
    X = X[:400]
    f = ForwardFilter(true_params())
    run = f.run(X, lengths=[250, 150])
    prev = None
    for t, x in enumerate(X):
        s = f.step(x, None if t in (0, 250) else prev)
        np.testing.assert_allclose(s.log_posterior, run.log_posteriors[t], rtol=0, atol=1e-10)
        assert s.state == run.states[t]
        assert s.loglik == pytest.approx(run.loglik[t], abs=1e-10)
        assert s.confidence == pytest.approx(s.posterior.max())
        prev = s.log_posterior
    np.testing.assert_allclose(run.posteriors.sum(axis=1), 1.0, atol=1e-12)
    second = f.run(X[250:])
    np.testing.assert_allclose(second.posteriors, run.posteriors[250:], atol=1e-12)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_filter_loglik_equals_hmmlearn_score(
    sampled: tuple[np.ndarray, np.ndarray], cov_type: str
) -> None:
    X, _ = sampled
    p = true_params()
    if cov_type == "diag":
        p = HMMParams(
            p.startprob, p.transmat, p.means, np.diagonal(p.covars, axis1=1, axis2=2), "diag"
        )
    ours = log_likelihood(p, X[:1000], lengths=[600, 400])
    theirs = _hmmlearn_model(p).score(X[:1000], lengths=[600, 400])
    assert ours == pytest.approx(theirs, rel=1e-10)
    n_p = n_free_params(3, 3, cov_type)  # type: ignore[arg-type]
    assert bic(p, X[:1000], [600, 400]) == pytest.approx(
        -2 * theirs + n_p * np.log(1000), rel=1e-10
    )


def test_step_uses_transitions_not_a_mixture() -> None:
    """A single row with a carried posterior is not a Gaussian-mixture posterior."""
    p = true_params()
    f = ForwardFilter(p)
    x = np.array([0.75, 0.5, 0.4])  # between states 0 and 1
    log_prior = np.log(np.array([0.98, 0.01, 0.01]))
    with_prev = f.step(x, log_prior)
    no_prev = f.step(x)
    mixture = np.exp(f.log_emission(x)) * p.startprob
    mixture /= mixture.sum()
    np.testing.assert_allclose(no_prev.posterior, mixture, atol=1e-12)
    assert with_prev.posterior[0] > no_prev.posterior[0] + 0.2


def test_step_rejects_bad_input() -> None:
    f = ForwardFilter(true_params())
    with pytest.raises(ValueError, match="index 1"):
        f.step(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        f.step(np.zeros(4))
    with pytest.raises(ValueError, match="log_prev"):
        f.step(np.zeros(3), np.full(3, np.nan))
    with pytest.raises(ValueError, match="row 5, column 2"):
        X = np.zeros((10, 3))
        X[5, 2] = np.inf
        f.run(X)
    with pytest.raises(ValueError, match="lengths"):
        f.run(np.zeros((10, 3)), lengths=[4, 4])


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_params_roundtrip_through_npz_without_pickle(cov_type: str) -> None:
    p = true_params()
    if cov_type == "diag":
        p = HMMParams(
            p.startprob, p.transmat, p.means, np.diagonal(p.covars, axis1=1, axis2=2), "diag"
        )
    buf = io.BytesIO()
    np.savez(buf, **p.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        q = HMMParams.from_arrays(dict(z))
    assert q.covariance_type == cov_type
    assert q.equals(p)
    assert q.full_covars().shape == (3, 3, 3)


def test_validate_names_the_problem() -> None:
    p = true_params()
    T = p.transmat.copy()
    T[1] = 0.0
    with pytest.raises(DegenerateModelError, match="transmat: row 1"):
        HMMParams(p.startprob, T, p.means, p.covars)
    C = p.covars.copy()
    C[2] = np.diag([1.0, -1.0, 1.0])
    with pytest.raises(DegenerateModelError, match="covars: state 2 is not positive definite"):
        HMMParams(p.startprob, p.transmat, p.means, C)
    M = p.means.copy()
    M[1, 2] = np.nan
    with pytest.raises(DegenerateModelError, match=r"means: non-finite value at \(1, 2\)"):
        HMMParams(p.startprob, p.transmat, M, p.covars)
    with pytest.raises(DegenerateModelError, match="covars: expected shape"):
        HMMParams(p.startprob, p.transmat, p.means, p.covars[:, 0], "full")
    with pytest.raises(DegenerateModelError, match="variance <= 0"):
        HMMParams(p.startprob, p.transmat, p.means, np.zeros((3, 3)), "diag")
    with pytest.raises(DegenerateModelError, match="missing"):
        HMMParams.from_arrays({"means": p.means})


def test_fit_refuses_empty_states_and_reports_every_candidate(
    sampled: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = sampled
    cfg = HMMConfig(k_range=(3, 3), n_init=2, n_iter=10, min_occupancy=0.5)
    with pytest.raises(DegenerateModelError, match=r"no valid candidate.*empty state"):
        fit_hmm(X[:800], config=cfg)


def test_fit_diag_and_loglik_criterion(sampled: tuple[np.ndarray, np.ndarray]) -> None:
    X, truth = sampled
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warnings from our side
        fit = fit_hmm(
            X[:1500],
            config=HMMConfig(k_range=(3, 3), covariance_type="diag", n_init=2, criterion="loglik"),
        )
    assert fit.params.covariance_type == "diag" and fit.params.covars.shape == (3, 3)
    best = max(c["loglik"] for c in fit.candidates if c["ok"])
    assert fit.loglik == pytest.approx(best)
    _, acc = best_label_alignment(truth[:1500], ForwardFilter(fit.params).run(X[:1500]).states, 3)
    assert acc >= 0.75


def test_fit_rejects_bad_input() -> None:
    X = np.zeros((100, 2))
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match="row 7, column 1"):
        fit_hmm(X)
    with pytest.raises(ValueError, match="k_range"):
        HMMConfig(k_range=(4, 3))


def test_posterior_entropy_is_normalised() -> None:
    assert posterior_entropy(np.eye(4)) == 0.0
    assert posterior_entropy(np.full((3, 4), 0.25)) == pytest.approx(1.0)
    assert 0.0 < posterior_entropy(np.array([0.7, 0.1, 0.1, 0.1])) < 1.0


def test_run_continues_from_log_prev_and_survives_impossible_observations(
    sampled: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = sampled
    f = ForwardFilter(true_params())
    whole = f.run(X[:300])
    tail = f.run(X[200:300], log_prev=whole.log_posteriors[199])
    np.testing.assert_allclose(tail.posteriors, whole.posteriors[200:], atol=1e-12)
    np.testing.assert_allclose(tail.loglik, whole.loglik[200:], atol=1e-9)
    # state 1 is unreachable (zero start and transition mass) yet alone explains x=100:
    # the scaled recursion underflows and must fall back to the log-space update
    p = HMMParams(np.array([1.0, 0.0]), np.eye(2), np.array([[0.0], [100.0]]), np.ones((2, 1, 1)))
    g = ForwardFilter(p)
    Y = np.array([[0.0], [100.0], [99.0]])
    run = g.run(Y)
    s0 = g.step(Y[0])
    s1 = g.step(Y[1], s0.log_posterior)
    s2 = g.step(Y[2], s1.log_posterior)
    assert np.isfinite(run.loglik).all()
    for t, s in enumerate((s0, s1, s2)):
        np.testing.assert_allclose(run.posteriors[t], s.posterior, atol=1e-12)
        assert run.loglik[t] == pytest.approx(s.loglik, rel=1e-12)
    assert run.states.tolist() == [0, 1, 1]


def test_regime_accuracy_maps_states_many_to_one() -> None:
    truth = np.array([0, 0, 0, 1, 1, 1])
    assert regime_accuracy(truth, np.array([1, 1, 1, 0, 0, 0]), 2) == 1.0
    # two states inside regime 0 both map to it; one misplaced sample is a miss
    assert regime_accuracy(truth, np.array([2, 2, 1, 0, 0, 1]), 3) == pytest.approx(5 / 6)
    assert best_label_alignment(truth, np.array([2, 2, 1, 0, 0, 1]), 3)[1] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="equal non-empty 1-D"):
        regime_accuracy(truth, truth[:3], 2)
