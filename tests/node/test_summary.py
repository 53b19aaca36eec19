"""The backtest's PnL curve: the close-out of what is still open, and the perp funding that
Nautilus's simulated venue never settles (charged from the position path and the data's rates)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId

from node.summary import pnl_curve
from training.costs import FUNDING_PERIOD_NS
from training.costs import CostModel
from training.features.engine import BookTop

T = FUNDING_PERIOD_NS


def row(ts: int, equity: float, position: float, mid: float) -> dict:
    return {"ts": ts, "equity": equity, "position": position, "mid": mid}


def test_a_backtest_pays_the_funding_of_the_positions_it_held_over_a_funding_time() -> None:
    rate = FundingRateUpdate(InstrumentId.from_str("BTCUSDT-PERP.BINANCE"), Decimal("-0.0002"),
                             T - 5, T - 5, next_funding_ns=T)  # fmt: skip
    costs = CostModel.tier("usdm").with_funding([rate])
    book = BookTop.of(40_000.0, 1.0, 40_001.0, 1.0)
    timeline = [row(T - 2, 1000.0, -0.5, 40_000.5), row(T + 1, 1001.0, 0.0, 40_000.5),
                row(2 * T + 1, 1002.0, 0.0, 40_000.5)]  # fmt: skip
    strategy = SimpleNamespace(timeline=timeline, last_priced=book)
    pnl, close = pnl_curve(strategy, 1000.0, costs, charge_funding=True)
    # short 0.5 at a -2 bp rate pays 0.5 x 40000.5 x 2 bp; flat at the next funding time
    paid = 0.5 * 40_000.5 * 2e-4
    assert close == {"open_position_end": 0.0, "close_cost": 0.0, "funding": pytest.approx(paid)}
    assert pnl.tolist() == pytest.approx([0.0, 1.0 - paid, 2.0 - paid])
    live, close = pnl_curve(strategy, 1000.0, costs)  # a live account is settled by Binance
    assert "funding" not in close and live.tolist() == [0.0, 1.0, 2.0]
