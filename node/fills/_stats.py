"""How much of what a backtest offered passively was filled, from Nautilus's orders report."""

from __future__ import annotations

from typing import Any

__all__ = ["passive_fill_rate"]

#: Statuses of orders that never rested at the venue.
_NEVER_RESTED = ("INITIALIZED", "DENIED", "REJECTED", "SUBMITTED", "EMULATED", "RELEASED")


def passive_fill_rate(orders: Any) -> dict[str, float | int | None]:
    """Passive fill figures of ``engine.trader.generate_orders_report()``: over LIMIT orders that
    rested at the venue and took no liquidity (``liquidity_side`` not ``TAKER``), the filled share
    of their quantity (``passive_fill_rate``) and of their count (``passive_orders_filled`` /
    ``passive_orders``: any fill). ``None`` rates when nothing rested.

    >>> import pandas as pd
    >>> orders = pd.DataFrame({
    ...     "type": ["LIMIT", "LIMIT", "LIMIT", "MARKET"],
    ...     "status": ["FILLED", "CANCELED", "PARTIALLY_FILLED", "FILLED"],
    ...     "liquidity_side": ["MAKER", "NO_LIQUIDITY_SIDE", "MAKER", "TAKER"],
    ...     "quantity": ["1.0", "1.0", "2.0", "1.0"],
    ...     "filled_qty": ["1.0", "0", "0.5", "1.0"],
    ... })
    >>> passive_fill_rate(orders)
    {'passive_orders': 3, 'passive_orders_filled': 2, 'passive_fill_rate': 0.375}
    """
    import pandas as pd

    if len(orders) == 0:
        return {"passive_orders": 0, "passive_orders_filled": 0, "passive_fill_rate": None}
    rested = (
        (orders["type"].astype(str) == "LIMIT")
        & ~orders["status"].astype(str).isin(_NEVER_RESTED)
        & (orders["liquidity_side"].astype(str) != "TAKER")
    )
    quantity = pd.to_numeric(orders.loc[rested, "quantity"].astype(str)).to_numpy()
    filled = pd.to_numeric(orders.loc[rested, "filled_qty"].astype(str)).to_numpy()
    total = float(quantity.sum())
    return {
        "passive_orders": int(rested.sum()),
        "passive_orders_filled": int((filled > 0).sum()),
        "passive_fill_rate": float(filled.sum()) / total if total > 0 else None,
    }
