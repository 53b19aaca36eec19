"""The one instrument precision fit every importer uses, and the fixed-point grid it shares
with the catalog encoder."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.columns import DeltaColumns
from training.data.columns import MarketEvents
from training.data.columns import QuoteColumns
from training.data.columns import TradeColumns
from training.data.fixed import FIXED_PRECISION
from training.data.fixed import encode_fixed
from training.data.fixed import off_grid
from training.data.instruments import binance_instrument
from training.data.instruments import fit_events
from training.data.instruments import fit_precision
from training.data.instruments import fitted_instrument
from training.data.instruments import precision_needed
from training.errors import BadInputError

SPOT = binance_instrument("BTCUSDT", "spot")  # price 2, size 5 decimals


def _trades(price: list[float], size: list[float]) -> MarketEvents:
    rows = [(1, 1, p, q, 1, i) for i, (p, q) in enumerate(zip(price, size, strict=True))]
    return MarketEvents(DeltaColumns.empty(), TradeColumns.from_rows(rows), QuoteColumns.empty())


def test_data_on_the_grid_changes_nothing() -> None:
    inst, note = fit_events(SPOT, _trades([61837.64, 61837.65], [0.5, 0.00001]))
    assert inst is SPOT and note == {}


def test_finer_data_widens_the_precision_and_keeps_the_exchange_increments() -> None:
    inst, note = fit_events(SPOT, _trades([61837.645], [0.000001]))
    assert note == {"price_precision": [2, 3], "size_precision": [5, 6]}
    assert (inst.price_precision, inst.size_precision) == (3, 6)
    # the exchange's tick and step stay what they are, written at the wider precision
    assert str(inst.price_increment) == "0.010" and str(inst.size_increment) == "0.000010"
    assert str(inst.min_quantity) == "0.000010" and str(inst.max_price) == "1000000.000"
    # exactly what binance_instrument builds when asked for those precisions
    asked = binance_instrument("BTCUSDT", "spot", price_precision=3, size_precision=6)
    assert type(inst).to_dict(inst) == type(asked).to_dict(asked)
    encode_fixed(np.array([0.000001]), inst.size_precision)  # now it encodes


def test_extra_prices_and_sizes_take_part() -> None:
    empty = MarketEvents(DeltaColumns.empty(), TradeColumns.empty(), QuoteColumns.empty())
    inst, note = fit_events(SPOT, empty, prices=[np.array([1.2345])], sizes=[np.array([2.0])])
    assert note == {"price_precision": [2, 4]} and inst.size_precision == 5


def test_fitted_instrument_is_exchange_info_plus_the_fit() -> None:
    inst, note = fitted_instrument("BTCUSDT", "usdm", _trades([61837.64], [0.001]))
    assert inst.id.value == "BTCUSDT-PERP.BINANCE" and note == {"price_precision": [1, 2]}


def test_beyond_fixed_precision_is_a_bad_input_naming_the_field() -> None:
    with pytest.raises(
        BadInputError, match=r"BTCUSDT\.BINANCE size: 2\.5e-17 needs more than 16"
    ) as err:
        fit_precision(SPOT, [np.array([1.0])], [np.array([0.5, 2.5e-17])])
    assert err.value.field == "BTCUSDT.BINANCE size"
    assert isinstance(err.value, ValueError)


def test_a_precision_the_encoder_cannot_hold_is_a_bad_input() -> None:
    # 1e-12 needs 12 decimals; 1e7 at 12 decimals is beyond the encoder's int64 units
    with pytest.raises(BadInputError, match="beyond the fixed-point encoder's range") as err:
        precision_needed(np.array([1e7, 1e-12]), field="trade_tick.price")
    assert err.value.field == "trade_tick.price"


def test_precision_needed_never_rounds() -> None:
    assert precision_needed(np.array([1.5, 25.426189]), minimum=5) == 6
    assert precision_needed(np.array([0.1 + 0.2])) == 1  # float noise is not a decimal
    assert precision_needed(np.array([4e-7]), minimum=3) == 7  # was "0" at 3 decimals
    assert precision_needed(np.array([10.0**-FIXED_PRECISION])) == FIXED_PRECISION
    assert precision_needed(np.empty(0), minimum=4) == 4


def test_off_grid_catches_a_value_that_would_be_stored_as_zero() -> None:
    assert off_grid(np.array([0.0, 4e-7, 0.001]), 3).tolist() == [False, True, False]
    with pytest.raises(BadInputError, match=r"size\[0\] = 4e-07 is not a multiple of 1e-3"):
        encode_fixed(np.array([4e-7]), 3, "size")
