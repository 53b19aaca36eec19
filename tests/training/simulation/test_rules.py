"""The strategy's pure decision rules (training.simulation.rules.decide): guards, holds, exits."""

from __future__ import annotations

import dataclasses

import pytest

from training.simulation.rules import REASON_CODES
from training.simulation.rules import Answer
from training.simulation.rules import GuardLimits
from training.simulation.rules import Market
from training.simulation.rules import RuleConfig
from training.simulation.rules import RuleState
from training.simulation.rules import decide

S = 10**9
CFG = RuleConfig(limits=GuardLimits(min_conf=0.5, max_position=0.03, cooldown_s=5.0,
                                    max_drawdown=10.0), hold_s=60.0, tick=0.01,
                 min_notional=10.0, size_increment=0.01, entry_ttl_s=5.0)  # fmt: skip


def market(t: float, mid: float = 100.0, spread_bp: float = 2.0) -> Market:
    half = mid * spread_bp * 0.5e-4
    return Market(round(t * S), mid, spread_bp, 1.0, mid + 0.001, mid, mid - half, mid + half)


def test_entry_then_cooldown_then_position_limit() -> None:
    # the size is min notional x 1.1 at 100.00 on the size grid (0.11); above max_position: POS
    assert decide(market(0), Answer("buy", 0.9), RuleState(), CFG).verdict == "POS"
    big = dataclasses.replace(CFG, limits=dataclasses.replace(CFG.limits, max_position=0.2))
    d = decide(market(0), Answer("buy", 0.9), RuleState(), big)
    assert (d.verdict, d.counted, d.entry.side, d.entry.quantity) == ("OK", True, "buy", 0.11)
    s = RuleState(last_order_ns=d.last_order_ns)
    assert decide(market(2), Answer("buy", 0.9), s, big).verdict == "COOLDOWN"
    full = RuleState(position=0.12, avg_px=100.0, hold_until_ns=60 * S, last_order_ns=0)
    assert decide(market(9), Answer("buy", 0.9), full, big).verdict == "POS"


def test_flat_answers_are_not_counted_and_failures_are_latency() -> None:
    d = decide(market(0), Answer("flat", 0.9), RuleState(), CFG)
    assert (d.verdict, d.counted, d.entry) == ("FLAT", False, None)
    failed = decide(
        market(0), Answer("flat", 0.0, latency_ms=None, answered=False), RuleState(), CFG
    )
    assert (failed.verdict, failed.counted) == ("LATENCY", True)
    assert decide(market(0), Answer("buy", 0.3), RuleState(), CFG).verdict == "CONF"
    assert decide(market(0, spread_bp=50.0), Answer("buy", 0.9), RuleState(), CFG).verdict == (
        "SPREAD")  # fmt: skip
    assert {"PRICE", "VWAP"} <= set(REASON_CODES)


def test_hold_extension_and_exit_reasons() -> None:
    s = RuleState(position=0.12, avg_px=100.0)
    d = decide(market(10), Answer("flat", 0.9), s, CFG)
    assert d.hold_until_ns == 70 * S and d.exit_reason is None  # first seen open: hold 60 s
    s = dataclasses.replace(s, hold_until_ns=d.hold_until_ns)
    d = decide(market(50), Answer("buy", 0.9), s, CFG)  # a confident same-side signal extends
    assert d.hold_until_ns == 110 * S and d.verdict == "POS"
    d = decide(market(110), Answer("flat", 0.9), dataclasses.replace(s, hold_until_ns=110 * S), CFG)
    assert d.exit_reason == "HOLD"
    # a confident same-side signal cancels a working HOLD exit and holds on
    working = dataclasses.replace(s, hold_until_ns=110 * S, exit_reason="HOLD")
    d = decide(market(111), Answer("buy", 0.9), working, CFG)
    assert d.cancel_exit and d.exit_reason is None and d.hold_until_ns == 171 * S
    # an opposite signal exits only with signal_exit; it never enters the other way
    d = decide(market(20), Answer("sell", 0.9), dataclasses.replace(s, hold_until_ns=70 * S), CFG)
    assert d.exit_reason is None and d.verdict == "FLAT"
    sig = dataclasses.replace(CFG, signal_exit=True)
    assert decide(market(20), Answer("sell", 0.9), dataclasses.replace(
        s, hold_until_ns=70 * S), sig).exit_reason == "SIGNAL"  # fmt: skip


def test_drawdown_trips_the_kill_switch_and_kill_flattens() -> None:
    s = RuleState(position=0.12, avg_px=100.0, equity=-11.0, peak=0.0, hold_until_ns=99 * S)
    d = decide(market(10), Answer("flat", 0.9), s, CFG)
    assert d.trip == "DD" and d.exit_reason == "KILL"
    killed = RuleState(killed=True, kill_reason="MANUAL")
    assert decide(market(0), Answer("buy", 0.9), killed, CFG).verdict == "KILL"
    # KILL is sticky over a later HOLD
    s = RuleState(position=0.12, avg_px=100.0, killed=True, exit_reason="KILL", hold_until_ns=0)
    assert decide(market(100), Answer("flat", 0.9), s, CFG).exit_reason == "KILL"


def test_resting_entry_expires_after_its_ttl() -> None:
    s = RuleState(entry_ns=0, last_order_ns=0, entry_side="buy")
    assert not decide(market(4), Answer("buy", 0.9), s, CFG).cancel_entry
    assert decide(market(5), Answer("buy", 0.9), s, CFG).cancel_entry
    with pytest.raises(ValueError, match="entry_ttl_s"):
        RuleConfig(entry_ttl_s=0.0)


def test_resting_entry_goes_when_the_signal_turns_flat_or_opposite_or_risk_trips() -> None:
    """Issue 12: a resting entry is cancelled at once on a flat or opposite signal, on KILL, on a
    DD trip and when features are not ready; while it works no second entry is made."""
    s = RuleState(entry_ns=0, last_order_ns=0, entry_side="buy")
    keep = decide(market(1), Answer("buy", 0.9), s, CFG)
    assert not keep.cancel_entry and keep.entry is None  # one working entry at a time
    for answer in (Answer("flat", 0.9), Answer("sell", 0.9), Answer.not_ready()):
        assert decide(market(1), answer, s, CFG).cancel_entry, answer
    killed = dataclasses.replace(s, killed=True, kill_reason="MANUAL")
    assert decide(market(1), Answer("buy", 0.9), killed, CFG).cancel_entry
    dd = dataclasses.replace(s, equity=-11.0, peak=0.0)
    d = decide(market(1), Answer("buy", 0.9), dd, CFG)
    assert d.trip == "DD" and d.cancel_entry and d.entry is None
    big = dataclasses.replace(CFG, limits=dataclasses.replace(CFG.limits, max_position=0.2))
    d = decide(market(9), Answer("buy", 0.9), s, big)  # past the cooldown: the working entry
    assert (d.verdict, d.detail, d.entry) == ("COOLDOWN", "an entry is working", None)


def test_kill_and_stop_cross_at_once_hold_and_signal_rest_then_cross() -> None:
    long = RuleState(position=0.12, avg_px=100.0, hold_until_ns=10 * S)
    hold = decide(market(10), Answer("flat", 0.9), long, CFG)
    assert (hold.exit_reason, hold.aggressive, hold.exit_ns) == ("HOLD", False, 10 * S)
    working = dataclasses.replace(long, exit_reason="HOLD", exit_ns=10 * S)
    assert not decide(market(39), Answer("flat", 0.9), working, CFG).aggressive
    late = decide(market(40), Answer("flat", 0.9), working, CFG)  # exit_cross_s = 30
    assert (late.exit_reason, late.aggressive, late.exit_ns) == ("HOLD", True, 10 * S)
    killed = dataclasses.replace(working, killed=True, kill_reason="MANUAL")
    d = decide(market(11), Answer("flat", 0.9), killed, CFG)
    assert (d.exit_reason, d.aggressive, d.exit_ns) == ("KILL", True, 11 * S)
    stop = dataclasses.replace(CFG, stop_loss_bps=5.0)
    d = decide(market(11, mid=99.9), Answer("flat", 0.9), long, stop)
    assert (d.exit_reason, d.aggressive) == ("STOP", True)


def test_risk_runs_when_features_are_not_ready() -> None:
    """A not-ready sample (warm-up after a gap, book withdrawn) is never an entry nor counted,
    but the kill switch, DD, the stop and the hold still close a position."""
    long = RuleState(position=0.12, avg_px=100.0, hold_until_ns=99 * S)
    quiet = decide(market(1), Answer.not_ready(), long, CFG)
    assert (quiet.verdict, quiet.counted, quiet.exit_reason) == ("FLAT", False, None)
    killed = dataclasses.replace(long, killed=True, kill_reason="MANUAL")
    d = decide(market(1), Answer.not_ready(), killed, CFG)
    assert (d.exit_reason, d.aggressive, d.counted) == ("KILL", True, False)
    d = decide(market(1), Answer.not_ready(), dataclasses.replace(long, equity=-11.0, peak=0.0),
               CFG)  # fmt: skip
    assert d.trip == "DD" and d.exit_reason == "KILL"
    assert decide(market(99), Answer.not_ready(), long, CFG).exit_reason == "HOLD"
    flat = decide(market(1), Answer.not_ready(), RuleState(), CFG)
    assert flat.entry is None and not flat.counted


def test_dust_below_min_notional_is_not_exited() -> None:
    """A position worth less than the min notional (a partly filled entry) cannot be closed by
    any order the venue accepts: no exit is worked for it."""
    dust = RuleState(position=0.05, avg_px=100.0, hold_until_ns=0, killed=True)
    assert decide(market(1), Answer("flat", 0.9), dust, CFG).exit_reason is None


def test_risk_budget_sizes_by_realised_vol_within_the_limits() -> None:
    cfg = dataclasses.replace(CFG, limits=dataclasses.replace(CFG.limits, max_position=1.0),
                              hold_s=100.0, risk_budget=1.0)  # fmt: skip
    # 1 quote / (100 * 1 bp * sqrt(100)) = 10, capped at max_position 1.0
    d = decide(market(0), Answer("buy", 0.9), RuleState(), cfg)
    assert d.entry.quantity == pytest.approx(1.0)
    calm = Market(0, 100.0, 2.0, 40.0, 100.001, 100.0, 99.99, 100.01)  # 400 bp: 0.25
    assert decide(calm, Answer("buy", 0.9), RuleState(), cfg).entry.quantity == pytest.approx(0.25)
    wild = Market(0, 100.0, 2.0, 1000.0, 100.001, 100.0, 99.99, 100.01)  # below min notional
    assert decide(wild, Answer("buy", 0.9), RuleState(), cfg).entry.quantity == pytest.approx(0.11)
    most = RuleState(position=0.85, avg_px=100.0, hold_until_ns=99 * S)  # the room left: 0.15
    assert decide(market(0), Answer("buy", 0.9), most, cfg).entry.quantity == pytest.approx(0.15)
    stop = dataclasses.replace(cfg, stop_loss_bps=500.0)  # the stop distance is the risk: 0.2
    assert decide(calm, Answer("buy", 0.9), RuleState(), stop).entry.quantity == pytest.approx(0.2)
    with pytest.raises(ValueError, match="risk_budget"):
        RuleConfig(risk_budget=-1.0)


def test_long_only_never_opens_a_short_but_a_sell_still_exits_a_long() -> None:
    big = dataclasses.replace(CFG, limits=dataclasses.replace(CFG.limits, max_position=0.2))
    long_only = dataclasses.replace(big, long_only=True)
    assert decide(market(0), Answer("sell", 0.9), RuleState(), big).entry.side == "sell"
    d = decide(market(0), Answer("sell", 0.9), RuleState(), long_only)
    assert (d.verdict, d.entry, d.counted) == ("FLAT", None, False)
    assert decide(market(0), Answer("buy", 0.9), RuleState(), long_only).entry.side == "buy"
    held = RuleState(position=0.11, avg_px=100.0, hold_until_ns=70 * S)
    exits = dataclasses.replace(long_only, signal_exit=True)
    assert decide(market(20), Answer("sell", 0.9), held, exits).exit_reason == "SIGNAL"
    # an entry resting as a buy goes when the signal turns to sell, as without long_only
    working = RuleState(entry_ns=0, entry_side="buy", last_order_ns=0)
    assert decide(market(1), Answer("sell", 0.9), working, long_only).cancel_entry
