"""Binance instruments from the bundled exchangeInfo snapshot or a given file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair

from training.data.instruments import BUNDLED
from training.data.instruments import binance_instrument
from training.data.instruments import load_exchange_info

MAJORS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]


def test_spot_btcusdt_specs() -> None:
    i = binance_instrument("BTCUSDT", "spot")
    assert isinstance(i, CurrencyPair)
    assert i.id.value == "BTCUSDT.BINANCE"
    assert (i.price_precision, i.size_precision) == (2, 5)
    assert str(i.price_increment) == "0.01" and str(i.size_increment) == "0.00001"
    assert i.min_notional.as_decimal() == Decimal("10")
    assert str(i.min_notional.currency) == "USDT"
    assert (i.maker_fee, i.taker_fee) == (Decimal("0.001"), Decimal("0.001"))
    assert str(i.min_quantity) == "0.00001" and str(i.max_quantity) == "9000.00000"


def test_usdm_btcusdt_perpetual_specs() -> None:
    i = binance_instrument("BTCUSDT-PERP", "usdm")
    assert isinstance(i, CryptoPerpetual)
    assert i.id.value == "BTCUSDT-PERP.BINANCE"
    assert str(i.price_increment) == "0.1" and str(i.size_increment) == "0.001"
    assert (i.maker_fee, i.taker_fee) == (Decimal("0.0002"), Decimal("0.0005"))
    assert i.min_notional.as_decimal() == Decimal("10")
    assert str(i.settlement_currency) == "USDT" and not i.is_inverse


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_bundle_covers_major_usdt_pairs(market: str) -> None:
    for sym in MAJORS:
        i = binance_instrument(sym, market)  # type: ignore[arg-type]
        assert i.min_notional is not None and i.price_increment.as_double() > 0
    symbols = {s["symbol"] for s in load_exchange_info(None, market)["symbols"]}  # type: ignore[arg-type]
    assert set(MAJORS) <= symbols


def test_adabtc_for_klines_fixture() -> None:
    i = binance_instrument("ADABTC", "spot")
    assert str(i.quote_currency) == "BTC" and str(i.price_increment) == "0.00000001"


def test_unknown_symbol_names_the_file() -> None:
    with pytest.raises(KeyError, match=r"FOOUSDT.*spot\.json.*BTCUSDT"):
        binance_instrument("FOOUSDT", "spot")


def test_exchange_info_override(tmp_path: Path) -> None:
    info = json.loads(BUNDLED["spot"].read_text())
    entry = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    for f in entry["filters"]:
        if f["filterType"] == "PRICE_FILTER":
            f["tickSize"] = "0.10000000"
    path = tmp_path / "info.json"
    path.write_text(json.dumps({"symbols": [entry]}))
    i = binance_instrument("BTCUSDT", "spot", exchange_info=path)
    assert str(i.price_increment) == "0.1" and i.price_precision == 1
    with pytest.raises(KeyError, match=str(path)):
        binance_instrument("ETHUSDT", "spot", exchange_info=path)


def test_bad_exchange_info_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"symbols": [')
    with pytest.raises(ValueError, match=r"bad\.json:1"):
        binance_instrument("BTCUSDT", "spot", exchange_info=bad)


def test_precision_can_be_raised_not_lowered() -> None:
    i = binance_instrument("BTCUSDT", "spot", size_precision=8)
    assert i.size_precision == 8 and i.size_increment.as_decimal() == Decimal("0.00001")
    with pytest.raises(ValueError, match="size_precision 3"):
        binance_instrument("BTCUSDT", "spot", size_precision=3)
