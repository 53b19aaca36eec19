"""The trade simulator: fills only through the price, holds, exits, costs, the fast path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.costs import CostModel
from training.simulation.rules import GuardLimits
from training.simulation.rules import RuleConfig
from training.simulation.simulator import SimMarket
from training.simulation.simulator import simulate
from training.simulation.stats import round_trips

S = 10**9
RULES = RuleConfig(limits=GuardLimits(min_conf=0.5, max_position=1.0, cooldown_s=5.0),
                   hold_s=10.0, tick=0.01, min_notional=10.0, size_increment=0.01,
                   notional_multiple=1.0, entry_ttl_s=3.0)  # fmt: skip
COSTS = CostModel(maker_bps=2.0, taker_bps=5.0)


def market(mid: np.ndarray, sell_low: np.ndarray | None = None,
           buy_high: np.ndarray | None = None) -> SimMarket:  # fmt: skip
    n = len(mid)
    nan = np.full(n, np.nan)
    return SimMarket({
        "ts": np.arange(n, dtype=np.int64) * S, "mid": mid, "spread_bp": np.full(n, 2.0),
        "realised_vol_bp": np.ones(n), "microprice": mid, "vwap": mid,
        "best_bid": mid - 0.01, "best_ask": mid + 0.01,
        "next_sell_low": nan if sell_low is None else sell_low,
        "next_buy_high": nan if buy_high is None else buy_high,
        "ready": np.ones(n, bool), "book_ok": np.ones(n, bool), "session": np.zeros(n, np.int64),
    })  # fmt: skip


def random_walk(n: int = 3000, seed: int = 4) -> tuple[SimMarket, np.ndarray, np.ndarray]:
    """A random-walk market with trades around the mid, and random signals and confidences."""
    rng = np.random.default_rng(seed)
    mid = 100.0 * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))
    low, high = mid - np.abs(rng.normal(0, 0.02, n)), mid + np.abs(rng.normal(0, 0.02, n))
    actions = rng.choice([0, 1, 1, 1, 1, 2], n).astype(np.int8)
    return market(mid, low, high), actions, rng.uniform(0.3, 1.0, n)


def test_a_passive_round_trip_pays_two_maker_fees() -> None:
    n = 30
    mid = np.full(n, 100.0)
    mid[5:] = 101.0
    low = np.full(n, np.nan)
    low[0] = 99.98  # a seller trades through the buy at 100.00 (inside the spread) at once
    high = np.full(n, np.nan)
    high[15] = 101.5  # a buyer lifts through the exit at 101.00 after the 10 s hold
    actions = np.full(n, 1, np.int8)
    actions[0] = 2
    r = simulate(market(mid, low, high), actions, np.full(n, 0.9), RULES, COSTS)
    assert r.fills["side"].tolist() == [1, -1]
    assert r.fills["px"].tolist() == [100.0, 101.0]
    assert r.fills["ts"].tolist() == [1 * S, 16 * S]  # exit quoted at 10 s, filled after 15 s
    qty = r.fills["qty"][0]
    fees = qty * (100.0 + 101.0) * 2e-4
    assert r.fills["fee"].sum() == pytest.approx(fees)
    assert r.equity[-1] == pytest.approx(qty * 1.0 - fees)
    m = r.metrics()
    assert m["round_trips"] == 1 and m["cost_bp_per_rt"] == pytest.approx(2 * 2.0, rel=0.01)
    assert m["gross_edge_bp_per_rt"] == pytest.approx(100.0)
    assert r.counts == {"OK": 1}


def test_an_entry_the_price_never_trades_through_never_fills_and_expires() -> None:
    n = 20
    mid = np.linspace(100.0, 101.0, n)  # the market runs away from a resting buy
    low = np.r_[mid[1:], mid[-1]] - 0.005  # sellers only near the next mid, above the buy
    actions = np.full(n, 1, np.int8)
    actions[0] = 2
    r = simulate(market(mid, low), actions, np.full(n, 0.9), RULES, COSTS)
    assert len(r.fills["qty"]) == 0 and r.entries == 1 and r.equity[-1] == 0.0


def test_fast_path_is_the_full_replay() -> None:
    m, actions, conf = random_walk()
    fast = simulate(m, actions, conf, RULES, COSTS)
    full = simulate(m, actions, conf, RULES, COSTS, fast=False)
    np.testing.assert_array_equal(fast.equity, full.equity)
    assert fast.counts == full.counts and fast.entries == full.entries > 10
    assert len(fast.trips["gross"]) > 5


def test_long_only_never_holds_a_short() -> None:
    m, actions, conf = random_walk()
    rules = dataclasses.replace(RULES, long_only=True)
    both = simulate(m, actions, conf, RULES, COSTS)
    held = np.cumsum(both.fills["side"] * both.fills["qty"])
    assert held.min() < 0  # the same signals open shorts without long_only
    r = simulate(m, actions, conf, rules, COSTS)
    held = np.cumsum(r.fills["side"] * r.fills["qty"])
    assert held.min() >= -1e-12 and r.entries > 5 and len(r.trips["gross"]) > 2
    full = simulate(m, actions, conf, rules, COSTS, fast=False)
    np.testing.assert_array_equal(r.equity, full.equity)


def test_round_trips_split_a_flip() -> None:
    rt = round_trips(np.array([1, 2]), np.array([1, -1]), np.array([1.0, 2.0]),
                     np.array([100.0, 101.0]), np.array([0.1, 0.2]))  # fmt: skip
    assert rt["gross"].tolist() == [1.0] and rt["fees"].tolist() == pytest.approx([0.2])


def test_stop_crosses_at_the_touch_at_the_taker_fee_even_while_not_ready() -> None:
    """Issue 12: a STOP exit takes the opposite touch at once (taker fee), on a row whose
    features are not ready too; a HOLD exit nobody trades through rests, then crosses after
    ``exit_cross_s``."""
    n = 30
    mid = np.full(n, 100.0)
    mid[8:] = 99.0  # 100 bp against the long
    low = np.full(n, np.nan)
    low[0] = 99.98
    actions = np.full(n, 1, np.int8)
    actions[0] = 2
    m = market(mid, low)
    m.cols["ready"][8:12] = False  # a warm-up: the stop must not wait for it
    big = dataclasses.replace(RULES, notional_multiple=1.1)  # 0.11: above min notional at 99
    rules = dataclasses.replace(big, stop_loss_bps=50.0)
    actions, conf = actions[m.tradable], np.full(n, 0.9)[m.tradable]
    r = simulate(m, actions, conf, rules, COSTS)
    assert r.fills["ts"].tolist() == [1 * S, 8 * S] and r.fills["side"].tolist() == [1, -1]
    assert r.fills["px"][1] == pytest.approx(99.0 - 0.01)  # the bid, not a passive ask
    qty = r.fills["qty"][0]
    assert r.fills["fee"][1] == pytest.approx(qty * 98.99 * 5e-4)
    # no stop: the HOLD exit (due at 11 s) rests unfilled, then crosses 5 s later
    hold = simulate(m, actions, conf, dataclasses.replace(big, exit_cross_s=5.0), COSTS)
    assert hold.fills["ts"].tolist() == [1 * S, 16 * S]
    assert hold.fills["px"][1] == pytest.approx(98.99)
