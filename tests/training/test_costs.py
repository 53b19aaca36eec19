"""The one cost model: tiers, the instrument's fees, round trips by style, funding."""

from __future__ import annotations

import numpy as np
import pytest

from training.costs import FUNDING_PERIOD_NS
from training.costs import CostModel
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


def test_bad_fees_name_the_field() -> None:
    with pytest.raises(BadInputError, match="maker_bps"):
        CostModel(float("nan"), 1.0)
    with pytest.raises(BadInputError, match="fee tier"):
        CostModel.tier("vip9")


def test_cli_fee_tiers_are_the_cost_models() -> None:
    from training.cli.options import FEE_TIER_NAMES
    from training.costs import FEE_TIERS

    assert set(FEE_TIER_NAMES) == set(FEE_TIERS)
