"""Binance instruments with real exchange specs, from an ``exchangeInfo`` response.

A snapshot of Binance's spot and USD-M ``exchangeInfo`` (major USDT pairs, plus ADABTC) is
bundled in ``exchange_info/`` (provenance in its README); ``--exchange-info FILE`` overrides it.
Spot symbols map to ``CurrencyPair`` ``BTCUSDT.BINANCE``; USD-M perpetuals to ``CryptoPerpetual``
``BTCUSDT-PERP.BINANCE`` (Nautilus's Binance adapter naming). Tick size, step size and min
notional come from the ``PRICE_FILTER``/``LOT_SIZE``/``(MIN_)NOTIONAL`` filters; fees are Binance's
defaults (spot 0.1%/0.1%, USD-M maker 0.02% taker 0.05%).

>>> inst = binance_instrument("BTCUSDT", "spot")
>>> inst.id.value, str(inst.price_increment), str(inst.size_increment), str(inst.min_notional)
('BTCUSDT.BINANCE', '0.01', '0.00001', '10.00000000 USDT')
>>> perp = binance_instrument("BTCUSDT", "usdm")
>>> perp.id.value, str(perp.price_increment), str(perp.taker_fee)
('BTCUSDT-PERP.BINANCE', '0.1', '0.0005')
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from nautilus_trader.model.currencies import Currency
from nautilus_trader.model.enums import CurrencyType
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual, CurrencyPair, Instrument
from nautilus_trader.model.objects import Money, Price, Quantity

Market = Literal["spot", "usdm"]
EXCHANGE_INFO_DIR = Path(__file__).with_name("exchange_info")
BUNDLED = {"spot": EXCHANGE_INFO_DIR / "spot.json", "usdm": EXCHANGE_INFO_DIR / "usdm.json"}
VENUE = Venue("BINANCE")
FEES: dict[str, tuple[Decimal, Decimal]] = {
    "spot": (Decimal("0.001"), Decimal("0.001")),
    "usdm": (Decimal("0.0002"), Decimal("0.0005")),
}


def _path(path: Path | None, market: Market) -> Path:
    if market not in BUNDLED:
        raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")
    return Path(path) if path is not None else BUNDLED[market]


@lru_cache(maxsize=16)
def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
        raise ValueError(f"{path}: not a Binance exchangeInfo response (no 'symbols' list)")
    return data


def load_exchange_info(path: Path | None, market: Market) -> dict:
    """The parsed ``exchangeInfo`` JSON: ``path`` if given, else the bundled snapshot."""
    return _load(_path(path, market).resolve())


def _decimals(step: str) -> int:
    exp = Decimal(step).normalize().as_tuple().exponent
    return max(0, -int(exp))


def _trim(value: str) -> str:
    """``'0.01000000'`` -> ``'0.01'`` (keeps at least the integer digit)."""
    d = Decimal(value).normalize()
    return format(d, "f")


def _currency(code: str) -> Currency:
    try:
        return Currency.from_str(code, strict=True)
    except (ValueError, KeyError):
        return Currency(code, 8, 0, code, CurrencyType.CRYPTO)


def _filters(entry: dict[str, Any], source: Path) -> dict[str, dict[str, Any]]:
    out = {f["filterType"]: f for f in entry.get("filters", [])}
    for needed in ("PRICE_FILTER", "LOT_SIZE"):
        if needed not in out:
            raise ValueError(f"{source}: symbol {entry.get('symbol')}: no {needed} filter")
    return out


def _min_notional(filters: dict[str, dict[str, Any]]) -> str | None:
    if "NOTIONAL" in filters and "minNotional" in filters["NOTIONAL"]:
        return filters["NOTIONAL"]["minNotional"]
    f = filters.get("MIN_NOTIONAL", {})
    return f.get("minNotional", f.get("notional"))


def binance_instrument(
    symbol: str,
    market: Market,
    exchange_info: Path | None = None,
    price_precision: int | None = None,
    size_precision: int | None = None,
) -> Instrument:
    """Nautilus instrument for a Binance ``symbol`` (``BTCUSDT``; ``-PERP`` suffix allowed for usdm).

    ``price_precision``/``size_precision`` may raise (never lower) the precision implied by
    tickSize/stepSize, for data finer than today's filters; the increments stay the same.
    """
    source = _path(exchange_info, market)
    info = load_exchange_info(exchange_info, market)
    raw = symbol.upper().split(".")[0].removesuffix("-PERP")
    entries = {e.get("symbol"): e for e in info["symbols"]}
    if raw not in entries:
        raise KeyError(
            f"symbol {raw!r} not in {market} exchangeInfo {source} "
            f"(has: {', '.join(sorted(map(str, entries)))})"
        )
    e = entries[raw]
    if market == "usdm" and e.get("contractType") != "PERPETUAL":
        raise ValueError(f"{source}: {raw} is {e.get('contractType')}, not a PERPETUAL")
    f = _filters(e, source)
    tick, step = _trim(f["PRICE_FILTER"]["tickSize"]), _trim(f["LOT_SIZE"]["stepSize"])
    pp, sp = _decimals(tick), _decimals(step)
    for asked, implied, what in ((price_precision, pp, "price"), (size_precision, sp, "size")):
        if asked is not None and asked < implied:
            raise ValueError(f"{what}_precision {asked} < {implied} implied by {source} for {raw}")
    pp = pp if price_precision is None else price_precision
    sp = sp if size_precision is None else size_precision
    base, quote = _currency(e["baseAsset"]), _currency(e["quoteAsset"])
    maker, taker = FEES[market]
    min_notional = _min_notional(f)
    lot = f["LOT_SIZE"]
    price_f = f["PRICE_FILTER"]
    common: dict[str, Any] = {
        "raw_symbol": Symbol(raw),
        "base_currency": base,
        "quote_currency": quote,
        "price_precision": pp,
        "size_precision": sp,
        "price_increment": Price(Decimal(tick), pp),
        "size_increment": Quantity(Decimal(step), sp),
        "ts_event": 0,
        "ts_init": 0,
        "max_quantity": Quantity(Decimal(lot["maxQty"]), sp) if "maxQty" in lot else None,
        "min_quantity": Quantity(Decimal(lot["minQty"]), sp) if "minQty" in lot else None,
        "min_notional": Money(Decimal(min_notional), quote) if min_notional else None,
        "max_price": Price(Decimal(price_f["maxPrice"]), pp) if "maxPrice" in price_f else None,
        "min_price": Price(Decimal(price_f["minPrice"]), pp) if "minPrice" in price_f else None,
        "margin_init": Decimal(0),
        "margin_maint": Decimal(0),
        "maker_fee": maker,
        "taker_fee": taker,
    }
    if market == "spot":
        return CurrencyPair(instrument_id=InstrumentId(Symbol(raw), VENUE), **common)
    common["margin_init"] = Decimal(e.get("requiredMarginPercent", "0")) / 100
    common["margin_maint"] = Decimal(e.get("maintMarginPercent", "0")) / 100
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(f"{raw}-PERP"), VENUE),
        settlement_currency=_currency(e.get("marginAsset", e["quoteAsset"])),
        is_inverse=False,
        **common,
    )
