"""Online EM that keeps its memory (issue 12): the training memory and its reservoir, the
decaying step, and the guard's regime budget and policy check."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import BadInputError
from training.models.hmm import ForwardFilter
from training.models.hmm import HMMParams
from training.models.hmm import sample_hmm
from training.models.online import OnlineEMConfig
from training.models.online import OnlineMemory
from training.models.online import Reservoir
from training.models.online import ReservoirConfig
from training.models.online import SufficientStats
from training.models.online import partial_fit
from training.models.online import stationary_distribution
from training.models.online import training_memory

K = 3


def params() -> HMMParams:
    T = np.full((K, K), 0.01 / (K - 1))
    np.fill_diagonal(T, 0.99)
    means = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    return HMMParams(np.full(K, 1 / K), T, means, np.ones((K, 2)), "diag")


@pytest.fixture(scope="module")
def trained() -> tuple[HMMParams, np.ndarray, OnlineMemory]:
    p = params()
    X, _ = sample_hmm(p, 4000, seed=1)
    return p, X, training_memory(p, X, [1500, 2500])


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    """300 rows of regime 0, moved a little (the drift that triggers an adaptation)."""
    one = HMMParams(np.ones(1), np.ones((1, 1)), np.array([[-2.0, 0.5]]), np.ones((1, 2)), "diag")
    return sample_hmm(one, 300, seed=2)[0]


def test_training_memory_spans_every_regime(trained) -> None:
    p, X, memory = trained
    res = memory.reservoir
    assert memory.stats.n_samples == len(X) and memory.stats.n_updates == 0
    assert memory.stats.to_params(startprob_floor=0.0).equals(p, atol=1e-10)
    assert np.bincount(res.strata, minlength=K).tolist() == [16, 16, 16]
    assert res.weights.sum() == pytest.approx(1.0) and (res.weights > 0).all()
    score = res.score(p)
    np.testing.assert_allclose(score.loglik.mean(axis=1), res.reference_ll)
    assert score.by_stratum() == pytest.approx(res.reference_by_stratum())
    # each segment is filtered like a sequence that starts from the stationary distribution
    stationary = HMMParams(
        stationary_distribution(p.transmat), p.transmat, p.means, p.covars, p.covariance_type
    )
    run = ForwardFilter(stationary).run(res.X[5])
    np.testing.assert_allclose(score.loglik[5], run.loglik, atol=1e-10)
    np.testing.assert_allclose(score.posteriors[5], run.posteriors, atol=1e-10)
    # each segment was drawn for the state the model's filter holds over most of it
    assert (score.posteriors.mean(axis=1).argmax(axis=1) == res.strata).mean() > 0.9


def test_reservoir_refuses_too_short_data_and_bad_arrays(trained) -> None:
    p, X, memory = trained
    with pytest.raises(BadInputError, match="no sequence holds a whole reservoir segment"):
        Reservoir.build(p, X[:40], [20, 20], ReservoirConfig(segment_len=32))
    arrays = memory.reservoir.to_arrays()
    with pytest.raises(BadInputError, match="weights: sum"):
        Reservoir.from_arrays({**arrays, "weights": arrays["weights"] * 2})
    with pytest.raises(BadInputError, match="segment_len"):
        ReservoirConfig(segment_len=1)


def test_the_step_decays_with_the_rows_the_memory_has_seen(trained, window) -> None:
    p, X, memory = trained
    res, stats = partial_fit(p, window, stats=memory.stats, reservoir=memory.reservoir)
    assert res.memory_samples == len(X) and res.n_fit == 240
    # 240 new rows after 4000: the plain running average gives them 240 / 4240 of the weight
    assert res.step_size == pytest.approx(240 / 4240)
    assert stats.n_samples == len(X) + 240 and stats.n_updates == 1
    fresh, _ = partial_fit(p, window, stats=SufficientStats.from_params(p, n_samples=300))
    assert fresh.step_size == pytest.approx(240 / 540)
    assert OnlineEMConfig(max_memory=1000).step_size(10**6, 240) == pytest.approx(
        1 - (1 - 1e-3) ** 240
    )


def test_a_child_that_forgets_a_regime_is_refused(trained, window) -> None:
    """A short memory lets the window pull state 0 far: its training rows fall below budget."""
    p, _, memory = trained
    short = SufficientStats.from_params(p, n_samples=300)
    res, out = partial_fit(p, window, stats=short, reservoir=memory.reservoir)
    assert not res.accepted and res.reason.startswith("regime forgotten: reservoir stratum 0")
    assert res.params is p and out is short
    assert res.forgetting > OnlineEMConfig().max_forget
    assert res.strata_ll_after[0] < res.strata_reference[0] - 0.05
    # the whole memory keeps the step small: the same window is accepted within budget
    ok, new = partial_fit(p, window, stats=memory.stats, reservoir=memory.reservoir)
    assert ok.accepted and ok.forgetting <= OnlineEMConfig().max_forget
    assert ok.heldout_ll_after >= ok.heldout_ll_before  # no tolerance for a worse child
    assert new.n_updates == 1
    record = ok.record()
    assert record["accepted"] and set(record["strata_ll_after"]) == {"0", "1", "2"}


def test_the_policy_head_is_rechecked_on_the_childs_posteriors(trained, window) -> None:
    p, _, memory = trained

    def touchy(post: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.round(post[:, 0], 4)  # any change of the posterior changes the action

    def by_state(post: np.ndarray, X: np.ndarray) -> np.ndarray:
        return post.argmax(axis=1)

    kw = {"stats": memory.stats, "reservoir": memory.reservoir}
    res, out = partial_fit(p, window, actions=touchy, **kw)
    assert not res.accepted and res.reason.startswith("policy agreement")
    assert res.policy_rows == "reservoir" and res.policy_agreement < 0.9
    assert res.params is p and out is memory.stats
    ok, _ = partial_fit(p, window, actions=by_state, **kw)
    assert ok.accepted and ok.policy_agreement > 0.99
    loose = OnlineEMConfig(min_policy_agreement=0.0)
    assert partial_fit(p, window, loose, actions=touchy, **kw)[0].accepted


def test_memory_round_trips_as_arrays(trained) -> None:
    _, _, memory = trained
    back = OnlineMemory.from_arrays(memory.to_arrays())
    assert back.stats.n_samples == memory.stats.n_samples
    np.testing.assert_array_equal(back.reservoir.X, memory.reservoir.X)
    no_res = OnlineMemory.from_arrays(OnlineMemory(memory.stats).to_arrays())
    assert no_res.reservoir is None
