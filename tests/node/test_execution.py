"""VWAP anchoring, passive pricing near the microprice, sizing at the instrument's min notional,
exit reasons and the holding timer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from training.simulation.execution import HoldTimer
from training.simulation.execution import exit_reason
from training.simulation.execution import limit_price
from training.simulation.execution import order_size
from training.simulation.execution import plan_order
from training.simulation.execution import vwap_blocks
from training.simulation.execution import vwap_deviation_bps

INST = TestInstrumentProvider.btcusdt_binance()
KW = {
    "anchor_bps": 10.0,
    "tick": float(INST.price_increment),
    "min_notional": float(INST.min_notional.as_double()),
    "multiple": 1.1,
    "size_increment": float(INST.size_increment),
}


def test_band_vwap_anchor_skips_beyond_and_trades_within() -> None:
    assert vwap_deviation_bps(60_060.0, 60_000.0) == pytest.approx(10.0)
    band = {**KW, "vwap_mode": "band"}
    inside = plan_order("buy", 60_059.0, 60_000.0, 60_058.0, 60_060.0, **band)
    assert inside.skip is None and inside.quantity > 0
    outside = plan_order("buy", 60_061.0, 60_000.0, 60_060.0, 60_062.0, **band)
    assert outside.skip == "VWAP" and outside.quantity == 0.0
    below = plan_order("sell", 59_939.0, 60_000.0, 59_938.0, 59_940.0, **band)
    assert below.skip == "VWAP"


def test_trend_vwap_anchor_lets_trend_entries_through_and_skips_counter_trend() -> None:
    """Default ``trend``: a buy far above vwap (an up-move) or a sell far below it is the trend
    and is planned at the passive price; the same signals against the move are skipped."""
    up = plan_order("buy", 60_120.0, 60_000.0, 60_119.0, 60_121.0, **KW)
    assert up.skip is None and up.price == 60_120.0 and up.quantity > 0  # never above the touch
    down = plan_order("sell", 59_880.0, 60_000.0, 59_879.0, 59_881.0, **KW)
    assert down.skip is None and down.price == 59_880.0
    assert plan_order("buy", 59_880.0, 60_000.0, 59_879.0, 59_881.0, **KW).skip == "VWAP"
    assert plan_order("sell", 60_120.0, 60_000.0, 60_119.0, 60_121.0, **KW).skip == "VWAP"
    # within the anchor nothing is skipped, on either side
    assert not vwap_blocks("buy", 59_950.0, 60_000.0, 10.0, "trend")
    assert not vwap_blocks("sell", 60_050.0, 60_000.0, 10.0, "trend")
    off = {**KW, "vwap_mode": "off"}
    assert plan_order("buy", 50_000.0, 60_000.0, 49_999.0, 50_001.0, **off).skip is None
    with pytest.raises(ValueError, match="vwap_mode"):
        vwap_blocks("buy", 1.0, 1.0, 10.0, "sideways")


def test_limit_price_is_passive_and_near_the_microprice() -> None:
    # wide spread: the tick at or inside the microprice on our side
    assert limit_price("buy", 100.037, 100.00, 100.05, 0.01) == 100.03
    assert limit_price("sell", 100.037, 100.00, 100.05, 0.01) == 100.04
    # one-tick spread: join the best bid / ask, never cross
    assert limit_price("buy", 100.009, 100.00, 100.01, 0.01) == 100.00
    assert limit_price("sell", 100.001, 100.00, 100.01, 0.01) == 100.01
    with pytest.raises(ValueError, match="side"):
        limit_price("hold", 100.0, 99.0, 101.0, 0.01)


def test_size_is_the_smallest_increment_above_min_notional() -> None:
    qty = order_size(60_000.0, 10.0, 1.0, 0.000001)
    assert qty == 0.000167  # 0.000166 * 60000 = 9.96 < 10
    assert Decimal(str(qty)) * 60_000 >= 10
    assert Decimal(str(qty - 0.000001)) * 60_000 < 10
    assert order_size(60_000.0, 10.0, 2.0, 0.00001) == 0.00034
    assert order_size(60_000.0, 0.0, 1.0, 0.001, min_quantity=0.002) == 0.002
    with pytest.raises(ValueError, match="size_increment"):
        order_size(60_000.0, 10.0, 1.0, 0.0)


def test_planned_order_meets_the_instruments_min_notional() -> None:
    plan = plan_order("sell", 42_015.674, 42_010.0, 42_015.66, 42_015.68, **KW)
    assert plan.price == 42_015.68 and plan.skip is None
    notional = INST.make_qty(plan.quantity).as_decimal() * INST.make_price(plan.price).as_decimal()
    assert notional >= INST.min_notional.as_decimal() * Decimal("1.1")
    assert INST.make_qty(plan.quantity).as_double() == plan.quantity


S = 10**9


def test_exit_reasons_in_priority_order() -> None:
    flat_args = ("flat", 100 * S, 200 * S, 100.0, 100.0, 10.0, False)
    assert exit_reason(0.0, "sell", 300 * S, 200 * S, 50.0, 100.0, 10.0, True) is None  # flat
    assert exit_reason(0.01, *flat_args) is None  # inside the hold, no adverse move
    assert exit_reason(0.01, "buy", 100 * S, 200 * S, 100.0, 100.0, 10.0, False) is None
    assert exit_reason(0.01, "sell", 100 * S, 200 * S, 100.0, 100.0, 10.0, False) == "SIGNAL"
    assert exit_reason(-0.01, "buy", 100 * S, 200 * S, 100.0, 100.0, 10.0, False) == "SIGNAL"
    assert exit_reason(0.01, "flat", 200 * S, 200 * S, 100.0, 100.0, 10.0, False) == "HOLD"
    # stop: 11 bp against a long stops at 10; a short's mirror image
    assert exit_reason(0.01, "buy", 100 * S, 200 * S, 99.89, 100.0, 10.0, False) == "STOP"
    assert exit_reason(0.01, "buy", 100 * S, 200 * S, 99.91, 100.0, 10.0, False) is None
    assert exit_reason(-0.01, "sell", 100 * S, 200 * S, 100.11, 100.0, 10.0, False) == "STOP"
    assert exit_reason(-0.01, "sell", 100 * S, 200 * S, 99.0, 100.0, 10.0, False) is None
    assert exit_reason(0.01, "buy", 100 * S, 200 * S, 50.0, 100.0, 0.0, False) is None  # no stop
    assert exit_reason(0.01, "buy", 100 * S, 200 * S, 99.0, 100.0, 10.0, True) == "KILL"


def test_hold_timer_starts_when_open_extends_on_same_side_and_clears_when_flat() -> None:
    t = HoldTimer(300.0)
    assert not t.update(0.0, "buy", 0) and t.until_ns is None
    assert not t.update(-0.01, "sell", 10 * S) and t.until_ns == 310 * S
    assert not t.update(-0.01, "buy", 20 * S) and t.until_ns == 310 * S  # opposite: no extension
    assert t.update(-0.01, "sell", 60 * S) and t.until_ns == 360 * S
    assert t.update(-0.01, "sell", 30 * S) and t.until_ns == 360 * S  # never shortened
    assert not t.update(0.0, "sell", 400 * S) and t.until_ns is None
    with pytest.raises(ValueError, match="hold_s"):
        HoldTimer(0.0)


def test_strategy_defaults_are_the_rules_training_simulates() -> None:
    """Issue 11: the simulator (training) trades with ``rules_for``'s defaults; the node builds
    its rules from ``PolicyHMMStrategyConfig``: the same numbers, or the two would drift."""
    from node.config import PolicyHMMStrategyConfig
    from node.config import rule_config
    from training.data.instruments import binance_instrument
    from training.pipelines.evaluation import rules_for

    for market in ("spot", "usdm"):
        inst = binance_instrument("BTCUSDT", market)
        node_rules = rule_config(PolicyHMMStrategyConfig(instrument_id=str(inst.id)), inst, 300.0)
        assert node_rules == rules_for(inst, 300.0)
