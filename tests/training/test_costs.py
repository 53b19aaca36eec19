"""The one cost model: tiers, the instrument's fees, round trips by style, funding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId

from training.costs import FUNDING_PERIOD_NS
from training.costs import CostModel
from training.costs import settled_funding
from training.data.instruments import binance_instrument
from training.errors import BadInputError


def test_instrument_fees_and_overrides() -> None:
    spot = CostModel.for_instrument(binance_instrument("BTCUSDT", "spot"))
    assert (spot.maker_bps, spot.taker_bps, spot.perp, spot.funding_bps) == (10.0, 10.0, False, 0.0)
    perp = CostModel.for_instrument(binance_instrument("BTCUSDT", "usdm"))
    assert (perp.maker_bps, perp.taker_bps, perp.perp, perp.funding_bps) == (2.0, 5.0, True, 1.0)
    bnb = CostModel.for_instrument(binance_instrument("BTCUSDT", "usdm"), fee_tier="usdm-bnb",
                                   taker_bps=4.0)  # fmt: skip
    assert (bnb.maker_bps, bnb.taker_bps) == (1.8, 4.0)


def test_round_trip_by_execution_style() -> None:
    c = CostModel(2.0, 5.0)
    assert c.round_trip_bps() == 4.0  # passive entry + passive exit = 2 x maker
    assert c.round_trip_bps("aggressive_exit", 1.0) == 7.5  # maker + taker + half spread
    assert c.round_trip_bps("aggressive", 1.0) == 11.0
    np.testing.assert_allclose(c.round_trip_bps("aggressive_exit", np.array([0.0, 2.0])), [7, 8])
    with pytest.raises(BadInputError, match="style"):
        c.round_trip_bps("market")


def test_funding_when_a_position_spans_a_funding_time() -> None:
    perp = CostModel.tier("usdm")
    t = FUNDING_PERIOD_NS
    assert perp.funding_bps_between(1, t - 10, t + 10) == 1.0  # a long pays
    assert perp.funding_bps_between(-1, t - 10, t + 10) == -1.0  # a short receives
    assert perp.funding_bps_between(1, t + 1, 2 * t - 1) == 0.0  # no funding time inside
    assert perp.funding_bps_between(1, 0, 3 * t) == 3.0
    assert CostModel.tier("spot").funding_bps_between(1, 0, 3 * t) == 0.0


H = 3600 * 10**9
PERP = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")


def update(ts: int, rate: str, next_ns: int | None = None, interval: int | None = None) -> Any:
    return FundingRateUpdate(
        PERP, Decimal(rate), ts, ts, interval=interval, next_funding_ns=next_ns
    )


def test_the_rate_settled_at_a_funding_time_is_the_data_s() -> None:
    t = FUNDING_PERIOD_NS
    mark_price = [update(t - 2 * H, "0.00020", t), update(t - 1, "0.00030", t),  # the estimate
                  update(t, "-0.00010", 2 * t)]  # after the settlement: the next one's  # fmt: skip
    assert settled_funding(mark_price) == ((t, 3.0), (2 * t, -1.0))
    public = [update(t, "0.00050", 2 * t, interval=480)]  # a settlement record, stamped at t
    assert settled_funding(public) == ((t, 5.0),)
    late = [update(2 * t + 10**6, "-0.00002150", 3 * t, interval=480)]  # calc_time 1 ms late
    assert settled_funding(late) == ((2 * t, -0.215),)
    assert settled_funding([update(1, "0.001", t)]) == ((t, 10.0),)
    stale = [update(0, "0.0004", t), update(2 * t + H, "0.0004", 3 * t)]
    assert settled_funding(stale)[:2] == ((t, 4.0), (3 * t, 4.0))  # nothing said about 2t


def test_funding_from_the_data_where_it_has_it_else_the_configured_rate() -> None:
    t = FUNDING_PERIOD_NS
    perp = CostModel.tier("usdm").with_funding([update(t - 1, "0.00030", t)])
    assert perp.funding_rates == ((t, 3.0),)
    assert perp.funding_bps_between(1, t - 10, t + 10) == 3.0  # the data's rate at t
    assert perp.funding_bps_between(-1, t - 10, 2 * t) == -4.0  # 3 at t, configured 1 at 2t
    np.testing.assert_allclose(
        perp.funding_bps_between(np.array([1, 1, -1]), np.array([0, t, 0]),
                                 np.array([t, 3 * t, 3 * t])), [3.0, 2.0, -5.0])  # fmt: skip
    assert CostModel.from_dict(perp.to_dict()) == perp  # bundle metadata round trip
    assert CostModel.tier("spot").with_funding([update(t - 1, "0.0003", t)]).funding_rates == ()
    with pytest.raises(BadInputError, match="funding_rates"):
        CostModel(2.0, 5.0, True, 1.0, ((t + 1, 3.0),))


def test_funding_paid_by_a_position_path() -> None:
    t = FUNDING_PERIOD_NS
    perp = CostModel.tier("usdm").with_funding([update(t - 1, "0.00030", t)])
    ts = [t - 2, t - 1, t + 1, t + 2, 2 * t + 1]
    position = [0.5, 0.5, -1.0, 0.0, 0.0]
    mark = [40_000.0, float("nan"), 40_100.0, 40_200.0, 40_300.0]  # no book at t - 1: last mark
    paid = perp.funding_paid_quote(ts, position, mark)
    np.testing.assert_allclose(paid, [0, 0, 6.0, 6.0, 6.0])  # 0.5 x 40 000 x 3 bp; flat at 2t
    assert CostModel.tier("spot").funding_paid_quote(ts, position, mark).tolist() == [0.0] * 5


def test_bad_fees_name_the_field() -> None:
    with pytest.raises(BadInputError, match="maker_bps"):
        CostModel(float("nan"), 1.0)
    with pytest.raises(BadInputError, match="fee tier"):
        CostModel.tier("vip9")


def test_cli_fee_tiers_are_the_cost_models() -> None:
    from training.cli.options import FEE_TIER_NAMES
    from training.costs import FEE_TIERS

    assert set(FEE_TIER_NAMES) == set(FEE_TIERS)
