"""Execution logic: VWAP anchoring, passive limit price near the microprice, min-notional sizing.

Pure functions over floats (the strategy turns them into Nautilus ``Price``/``Quantity`` with the
instrument's precisions), so they are tested without an engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

__all__ = ["OrderPlan", "limit_price", "order_size", "plan_order", "vwap_deviation_bps"]


@dataclass(frozen=True)
class OrderPlan:
    """A post-only limit order to submit, or ``skip`` with the reason (e.g. ``VWAP``)."""

    side: str
    price: float
    quantity: float
    skip: str | None = None


def vwap_deviation_bps(microprice: float, vwap: float) -> float:
    """``|microprice - vwap| / vwap`` in basis points.

    >>> round(vwap_deviation_bps(100.1, 100.0), 6)
    10.0
    """
    if not (vwap > 0 and math.isfinite(vwap) and math.isfinite(microprice)):
        raise ValueError(f"vwap/microprice: need finite, vwap > 0 (got {vwap!r}, {microprice!r})")
    return abs(microprice - vwap) / vwap * 1e4


def _to_tick(price: float, tick: float, rounding: str) -> float:
    t = Decimal(str(tick))
    return float((Decimal(repr(price)) / t).to_integral_value(rounding=rounding) * t)


def limit_price(
    side: str, microprice: float, best_bid: float, best_ask: float, tick: float
) -> float:
    """A passive price near the microprice: a buy at ``floor(micro)`` but below the ask, a sell
    at ``ceil(micro)`` but above the bid, so a post-only order rests instead of crossing.

    >>> limit_price("buy", 100.037, 100.0, 100.05, 0.01), limit_price("sell", 100.037, 100.0, 100.05, 0.01)
    (100.03, 100.04)
    >>> limit_price("buy", 100.004, 100.0, 100.01, 0.01)
    100.0
    """
    if side == "buy":
        return min(
            _to_tick(microprice, tick, ROUND_FLOOR), _to_tick(best_ask - tick, tick, ROUND_FLOOR)
        )
    if side == "sell":
        return max(
            _to_tick(microprice, tick, ROUND_CEILING),
            _to_tick(best_bid + tick, tick, ROUND_CEILING),
        )
    raise ValueError(f"side: {side!r} is not 'buy' or 'sell'")


def order_size(
    price: float,
    min_notional: float,
    multiple: float,
    size_increment: float,
    min_quantity: float = 0.0,
) -> float:
    """The smallest size on the increment grid with notional >= ``min_notional * multiple``.

    >>> order_size(60_000.0, 10.0, 1.1, 0.00001)
    0.00019
    """
    if not (price > 0 and min_notional >= 0 and multiple >= 1.0 and size_increment > 0):
        raise ValueError(
            f"order_size: need price > 0, min_notional >= 0, multiple >= 1, size_increment > 0 "
            f"(got {price}, {min_notional}, {multiple}, {size_increment})"
        )
    inc = Decimal(str(size_increment))
    raw = Decimal(repr(min_notional * multiple / price))
    qty = (raw / inc).to_integral_value(rounding=ROUND_CEILING) * inc
    floor_qty = (Decimal(repr(min_quantity)) / inc).to_integral_value(rounding=ROUND_CEILING) * inc
    return float(max(qty, floor_qty, inc))


def plan_order(
    side: str,
    microprice: float,
    vwap: float,
    best_bid: float,
    best_ask: float,
    *,
    anchor_bps: float,
    tick: float,
    min_notional: float,
    multiple: float,
    size_increment: float,
    min_quantity: float = 0.0,
) -> OrderPlan:
    """VWAP anchoring, then price and size; ``skip="VWAP"`` when the microprice strays too far."""
    if vwap_deviation_bps(microprice, vwap) > anchor_bps:
        return OrderPlan(side, 0.0, 0.0, skip="VWAP")
    price = limit_price(side, microprice, best_bid, best_ask, tick)
    if not price > 0:
        return OrderPlan(side, 0.0, 0.0, skip="PRICE")
    qty = order_size(price, min_notional, multiple, size_increment, min_quantity)
    return OrderPlan(side, price, qty)
