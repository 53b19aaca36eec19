"""training/labels.py: forward returns, cost-aware classes, and labels that see only the future."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from training.costs import CostModel
from training.models.labels import BUY
from training.models.labels import FLAT
from training.models.labels import SELL
from training.models.labels import LabelConfig
from training.models.labels import forward_returns
from training.models.labels import make_labels

S = 1_000_000_000


def test_forward_returns_on_irregular_clock() -> None:
    ts = np.array([0, 1, 3, 4, 7, 8]) * S
    mid = np.array([100.0, 101.0, 102.0, 99.0, 100.0, 103.0])
    r, valid = forward_returns(ts, mid, 2.0)
    # first sample at or after t+2: 0->3s(102), 1->3s(102), 3->7s(100), 4->7s(100), 7,8: none
    expect = np.log(np.array([102 / 100, 102 / 101, 100 / 102, 100 / 99, 1.0, 1.0]))
    expect[4:] = 0.0
    np.testing.assert_allclose(r, expect, rtol=0, atol=1e-15)
    assert valid.tolist() == [True, True, True, True, False, False]
    assert np.isfinite(r).all()


def test_make_labels_thresholds_and_costs() -> None:
    # issue 11: the cost is a whole round trip of the cost model, not one fee + half spread
    ts = np.arange(6) * S
    mid = np.array([100.0, 100.03, 100.0, 99.97, 100.0, 100.0])  # ~ +3, -3, -3, +3 bp steps
    spread = np.array([2.0, 2.0, 6.0, 2.0, 2.0, 2.0])
    costs = CostModel(maker_bps=1.0, taker_bps=2.0)
    lab = make_labels(ts, mid, spread, LabelConfig(horizon_s=1.0, costs=costs, min_edge_bps=0.0))
    np.testing.assert_allclose(lab.cost_bp, 2.0)  # passive: 2 x maker, no spread crossed
    assert lab.classes.dtype == np.int8
    # t0: +3bp > 2 -> buy; t1: -3bp < -2 -> sell; t2: -3bp -> sell; t3: +3bp -> buy
    assert lab.classes.tolist() == [BUY, SELL, SELL, BUY, FLAT, FLAT]
    assert lab.valid.tolist() == [True] * 5 + [False]
    np.testing.assert_allclose(lab.forward_return_bp[0], 1e4 * np.log(100.03 / 100.0))
    # an aggressive exit pays maker + taker + half the spread: 3 + 1 = 4 bp at t0, 6 bp at t2
    aggr = make_labels(ts, mid, spread, LabelConfig(1.0, costs, "aggressive_exit", 0.0))
    np.testing.assert_allclose(aggr.cost_bp, 3.0 + 0.5 * spread)
    assert aggr.classes.tolist() == [FLAT] * 6
    edged = make_labels(ts, mid, spread, LabelConfig(horizon_s=1.0, costs=costs, min_edge_bps=1.5))
    assert edged.classes.tolist() == [FLAT] * 6
    # by default a label demands 2 bp beyond the round trip: 3 bp moves no longer pay
    assert LabelConfig().min_edge_bps == 2.0
    assert make_labels(ts, mid, spread, LabelConfig(1.0, costs)).classes.tolist() == [FLAT] * 6


def test_flat_zero_spread_market_is_flat_unless_the_move_beats_two_fees() -> None:
    # a zero-spread market with moves of 0.9 and 1.1 x the passive round trip (2 x maker fee):
    # only the larger ones are labelled; one fee (the old rule) would have labelled them all
    fee = 10.0
    steps = np.array([0.0, 0.9, -0.9, 1.1, -1.1, 0.0]) * 2 * fee  # bp
    mid = 100.0 * np.exp(np.cumsum(steps) * 1e-4)
    lab = make_labels(np.arange(6) * S, mid, np.zeros(6),
                      LabelConfig(horizon_s=1.0, costs=CostModel(fee, fee), min_edge_bps=0.0))  # fmt: skip
    assert lab.classes.tolist() == [FLAT, FLAT, BUY, SELL, FLAT, FLAT]
    assert (lab.valid[:5]).all()
    flat = make_labels(np.arange(50) * S, np.full(50, 100.0), np.zeros(50),
                       LabelConfig(horizon_s=5.0, costs=CostModel(fee, fee), min_edge_bps=0.0))  # fmt: skip
    assert (flat.classes == FLAT).all()


def test_perp_labels_pay_funding_across_a_funding_time() -> None:
    # a +3 bp move over a horizon spanning 08:00 UTC: a long pays 1 bp funding, a short gets it
    eight = 8 * 3600 * S
    ts = np.array([eight - 2 * S, eight + 3 * S])
    mid = np.array([100.0, 100.0 * np.exp(3.0e-4)])
    perp = CostModel(maker_bps=1.0, taker_bps=2.0, perp=True, funding_bps=1.5)
    lab = make_labels(ts, mid, np.zeros(2), LabelConfig(5.0, perp, min_edge_bps=0.0))
    assert lab.classes[0] == FLAT  # 3 bp < 2 bp round trip + 1.5 bp funding
    spot = make_labels(
        ts, mid, np.zeros(2), LabelConfig(5.0, CostModel(1.0, 2.0), min_edge_bps=0.0)
    )
    assert spot.classes[0] == BUY


def test_label_uses_only_data_from_t_to_first_sample_after_horizon() -> None:
    rng = np.random.default_rng(3)
    n = 400
    ts = np.cumsum(rng.integers(200_000_000, 1_500_000_000, size=n)).astype(np.int64)
    mid = 100.0 * np.exp(np.cumsum(rng.normal(0, 3e-4, size=n)))
    spread = rng.uniform(0.5, 3.0, size=n)
    cfg = LabelConfig(horizon_s=5.0, costs=CostModel(0.5, 0.5), style="aggressive_exit")
    base = make_labels(ts, mid, spread, cfg)
    j = np.searchsorted(ts, ts + 5 * S, side="left")
    for i in (10, 150, 300):
        assert j[i] < n
        past_mid, past_sp = mid.copy(), spread.copy()
        past_mid[:i] *= 1.05
        past_sp[:i] = 50.0
        before = make_labels(ts, past_mid, past_sp, cfg)
        far_mid, far_sp = mid.copy(), spread.copy()
        far_mid[j[i] + 1 :] *= 0.9
        far_sp[i + 1 :] = 50.0
        after = make_labels(ts, far_mid, far_sp, cfg)
        for lab in (before, after):
            assert lab.classes[i] == base.classes[i]
            assert lab.forward_return_bp[i] == base.forward_return_bp[i]
            assert lab.cost_bp[i] == base.cost_bp[i]
        # ... while the sample at the horizon does matter
        hit = mid.copy()
        hit[j[i]] *= 1.01
        assert make_labels(ts, hit, spread, cfg).forward_return_bp[i] != base.forward_return_bp[i]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(1, 3_000), min_size=1, max_size=40),
    horizon_ms=st.integers(1, 5_000),
    seed=st.integers(0, 2**16),
)
def test_forward_returns_match_brute_force(steps: list[int], horizon_ms: int, seed: int) -> None:
    ts = np.cumsum(np.array(steps, dtype=np.int64)) * 1_000_000
    mid = np.random.default_rng(seed).uniform(50, 150, size=len(ts))
    r, valid = forward_returns(ts, mid, horizon_ms / 1000)
    for i in range(len(ts)):
        later = [k for k in range(len(ts)) if ts[k] >= ts[i] + horizon_ms * 1_000_000]
        assert valid[i] == bool(later)
        assert r[i] == (np.log(mid[later[0]] / mid[i]) if later else 0.0)


def test_bad_inputs_name_field_and_index() -> None:
    ts = np.arange(5) * S
    mid = np.full(5, 100.0)
    sp = np.ones(5)
    with pytest.raises(ValueError, match="ts_ns: not sorted at index 3"):
        make_labels(np.array([0, 1, 2, 1, 5]) * S, mid, sp)
    bad = mid.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"mid: .* at index 2"):
        make_labels(ts, bad, sp)
    bad_sp = sp.copy()
    bad_sp[4] = -1.0
    with pytest.raises(ValueError, match=r"spread_bp: .* at index 4"):
        make_labels(ts, mid, bad_sp)
    with pytest.raises(ValueError, match="ts_ns: expected 1-D integer"):
        make_labels(ts.astype(float), mid, sp)
    with pytest.raises(ValueError, match="horizon_s"):
        LabelConfig(horizon_s=0.0)


def test_horizon_never_crosses_a_session_boundary() -> None:
    # two days back to back: without lengths the last samples of day 1 would see day 2
    ts = np.concatenate([np.arange(5), 100 + np.arange(5)]) * S
    mid = np.concatenate([np.full(5, 100.0), np.full(5, 110.0)])
    r_all, v_all = forward_returns(ts, mid, 2.0)
    assert v_all[3] and r_all[3] == pytest.approx(np.log(1.1))
    r, v = forward_returns(ts, mid, 2.0, lengths=[5, 5])
    assert v.tolist() == [True, True, True, False, False, True, True, True, False, False]
    assert np.all(r == 0.0)
    lab = make_labels(ts, mid, np.ones(10), LabelConfig(horizon_s=2.0), lengths=[5, 5])
    assert lab.valid.tolist() == v.tolist() and lab.classes.tolist() == [FLAT] * 10
    with pytest.raises(ValueError, match="lengths"):
        forward_returns(ts, mid, 2.0, lengths=[5, 4])
