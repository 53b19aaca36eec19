"""The account after a user-stream gap.

Nautilus 1.231's Binance exec client re-subscribes a dropped user stream and reconciles its
orders (a mass status: fills come back as ``OrderFilled`` with ``reconciliation=True``), but not
the balances: the fill's account update went into the dead stream, so the node's balances stay
stale until the venue's next one. A strategy that values equity or (spot) its position from the
balances asks the venue for the account when it sees such a fill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nautilus_trader.model.events import OrderFilled
    from nautilus_trader.trading.strategy import Strategy


def refresh_account_after_reconciled_fill(strategy: Strategy, event: OrderFilled) -> bool:
    """Send ``QueryAccount`` for ``event``'s account when the fill came from reconciliation;
    ``True`` when it did."""
    if not event.reconciliation:
        return False
    strategy.query_account(event.account_id)
    return True
