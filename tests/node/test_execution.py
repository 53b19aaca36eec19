"""VWAP anchoring, passive pricing near the microprice, sizing at the instrument's min notional."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from node.execution import limit_price, order_size, plan_order, vwap_deviation_bps

INST = TestInstrumentProvider.btcusdt_binance()
KW = {
    "anchor_bps": 10.0,
    "tick": float(INST.price_increment),
    "min_notional": float(INST.min_notional.as_double()),
    "multiple": 1.1,
    "size_increment": float(INST.size_increment),
}


def test_vwap_anchor_skips_beyond_and_trades_within() -> None:
    assert vwap_deviation_bps(60_060.0, 60_000.0) == pytest.approx(10.0)
    inside = plan_order("buy", 60_059.0, 60_000.0, 60_058.0, 60_060.0, **KW)
    assert inside.skip is None and inside.quantity > 0
    outside = plan_order("buy", 60_061.0, 60_000.0, 60_060.0, 60_062.0, **KW)
    assert outside.skip == "VWAP" and outside.quantity == 0.0
    below = plan_order("sell", 59_939.0, 60_000.0, 59_938.0, 59_940.0, **KW)
    assert below.skip == "VWAP"


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
