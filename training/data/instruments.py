"""Binance instruments with real exchange specs, from an ``exchangeInfo`` response.

A snapshot of Binance's spot and USD-M ``exchangeInfo`` (major USDT pairs, plus ADABTC) is
bundled in ``exchange_info/`` (provenance in its README); ``--exchange-info FILE`` overrides it.
Spot symbols map to ``CurrencyPair`` ``BTCUSDT.BINANCE``; USD-M perpetuals to ``CryptoPerpetual``
``BTCUSDT-PERP.BINANCE`` (Nautilus's Binance adapter naming). Tick size, step size and min
notional come from the ``PRICE_FILTER``/``LOT_SIZE``/``(MIN_)NOTIONAL`` filters; fees are Binance's
defaults (spot 0.1%/0.1%, USD-M maker 0.02% taker 0.05%).

The one precision fit lives here too: data can be finer than today's tick/step (orders resting
since an older, finer step; BTCUSDT's LOT_SIZE step was 1e-6 in 2021, 1e-5 now), so every
importer widens the instrument's precision to hold its data exactly (:func:`fit_precision`) and
records the widening in its import report. It never rounds: data that needs more than the
16 decimals of Nautilus's 128-bit fixed point is a :class:`~training.errors.BadInputError`.

>>> inst = binance_instrument("BTCUSDT", "spot")
>>> inst.id.value, str(inst.price_increment), str(inst.size_increment), str(inst.min_notional)
('BTCUSDT.BINANCE', '0.01', '0.00001', '10.00000000 USDT')
>>> perp = binance_instrument("BTCUSDT", "usdm")
>>> perp.id.value, str(perp.price_increment), str(perp.taker_fee)
('BTCUSDT-PERP.BINANCE', '0.1', '0.0005')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from nautilus_trader.model.currencies import Currency
from nautilus_trader.model.enums import CurrencyType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Symbol
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from training.data.columns import MarketEvents
from training.data.fixed import FIXED_PRECISION
from training.data.fixed import off_grid
from training.data.fixed import out_of_range
from training.errors import BadInputError
from training.errors import NotFoundError

__all__ = [
    "BUNDLED",
    "FEES",
    "Market",
    "binance_instrument",
    "fit_events",
    "fit_precision",
    "fitted_instrument",
    "load_exchange_info",
    "precision_needed",
]

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
        raise BadInputError(f"market must be 'spot' or 'usdm', got {market!r}", field="market")
    return Path(path) if path is not None else BUNDLED[market]


@lru_cache(maxsize=16)
def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg})", field="exchange_info"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
        raise BadInputError(
            f"{path}: not a Binance exchangeInfo response (no 'symbols' list)",
            field="exchange_info",
        )
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
            raise BadInputError(
                f"{source}: symbol {entry.get('symbol')}: no {needed} filter", field="exchange_info"
            )
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
        raise NotFoundError(
            f"symbol {raw!r} not in {market} exchangeInfo {source} "
            f"(has: {', '.join(sorted(map(str, entries)))})",
            field="symbol",
        )
    e = entries[raw]
    if market == "usdm" and e.get("contractType") != "PERPETUAL":
        raise BadInputError(
            f"{source}: {raw} is {e.get('contractType')}, not a PERPETUAL", field="symbol"
        )
    f = _filters(e, source)
    tick, step = _trim(f["PRICE_FILTER"]["tickSize"]), _trim(f["LOT_SIZE"]["stepSize"])
    pp, sp = _decimals(tick), _decimals(step)
    for asked, implied, what in ((price_precision, pp, "price"), (size_precision, sp, "size")):
        if asked is not None and asked < implied:
            raise BadInputError(
                f"{what}_precision {asked} < {implied} implied by {source} for {raw}",
                field=f"{what}_precision",
            )
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


# -- the one precision fit -------------------------------------------------------------------


def precision_needed(values: np.ndarray, minimum: int = 0, *, field: str = "value") -> int:
    """Fewest decimals (>= ``minimum``) that hold every value exactly (the catalog encoder's grid).

    Raises :class:`~training.errors.BadInputError` naming ``field`` when no precision up to
    ``FIXED_PRECISION`` (16) holds the data, or when the precision it needs puts a value beyond
    the fixed-point encoder's range: widening further would mean rounding the data.

    >>> precision_needed(np.array([1.5, 25.426189]), minimum=5)
    6
    >>> precision_needed(np.array([2.5e-17]), field="trade_tick.size")
    Traceback (most recent call last):
    ...
    training.errors.BadInputError: trade_tick.size: 2.5e-17 needs more than 16 decimals, ...
    """
    v = np.asarray(values, dtype=np.float64)
    for p in range(minimum, FIXED_PRECISION + 1):
        off = off_grid(v, p)
        if not off.any():
            break
    else:
        bad = float(v[int(np.argmax(off))])
        raise BadInputError(
            f"{field}: {bad!r} needs more than {FIXED_PRECISION} decimals, the most Nautilus's "
            "128-bit fixed point holds",
            field=field,
        )
    too_big = out_of_range(v, p)
    if too_big.any():
        raise BadInputError(
            f"{field}: {float(v[int(np.argmax(too_big))])!r} at {p} decimals is beyond the fixed-point "
            "encoder's range",
            field=field,
        )
    return p


def fit_precision(
    instrument: Instrument, prices: Sequence[np.ndarray], sizes: Sequence[np.ndarray]
) -> tuple[Instrument, dict[str, list[int]]]:
    """The instrument with price/size precision widened (never narrowed) to hold the data.

    The increments (the exchange's tick and step), limits and fees stay what they are; only the
    precision they are written at grows, as :func:`binance_instrument` does when asked for a
    higher precision. Returns (instrument, ``{"size_precision": [old, new], ...}``) — the note
    is empty (and the instrument the same object) when nothing changed.
    """
    inst_id = instrument.id.value
    old = {"price_precision": int(instrument.price_precision)}
    old["size_precision"] = int(instrument.size_precision)
    new = {}
    for key, arrays in (("price_precision", prices), ("size_precision", sizes)):
        field = f"{inst_id} {key.removesuffix('_precision')}"
        data = [a for a in arrays if len(a)]
        values = np.concatenate(data) if data else np.empty(0)
        new[key] = precision_needed(values, old[key], field=field)
    note = {key: [old[key], new[key]] for key in old if new[key] != old[key]}
    if not note:
        return instrument, {}
    d = type(instrument).to_dict(instrument)
    pp, sp = new["price_precision"], new["size_precision"]
    d["price_precision"], d["size_precision"] = pp, sp
    for keys, prec in (
        (("price_increment", "max_price", "min_price"), pp),
        (("size_increment", "max_quantity", "min_quantity"), sp),
    ):
        for key in keys:
            if d.get(key) is not None:
                d[key] = f"{Decimal(str(d[key])):.{prec}f}"
    return type(instrument).from_dict(d), note


def fit_events(
    instrument: Instrument,
    events: MarketEvents,
    prices: Sequence[np.ndarray] = (),
    sizes: Sequence[np.ndarray] = (),
) -> tuple[Instrument, dict[str, list[int]]]:
    """:func:`fit_precision` over every price and size in ``events`` (plus ``prices``/``sizes``
    of data kept elsewhere, e.g. kline bars)."""
    d, t, q = events.deltas, events.trades, events.quotes
    return fit_precision(
        instrument,
        [d.price, t.price, q.bid_price, q.ask_price, *prices],
        [d.size, t.size, q.bid_size, q.ask_size, *sizes],
    )


def fitted_instrument(
    symbol: str,
    market: Market,
    events: MarketEvents,
    exchange_info: Path | None = None,
    prices: Sequence[np.ndarray] = (),
    sizes: Sequence[np.ndarray] = (),
) -> tuple[Instrument, dict[str, list[int]]]:
    """The exchangeInfo instrument of ``symbol`` with its precision fitted to the data
    (:func:`fit_events`): what every importer writes; the note goes to its import report."""
    return fit_events(binance_instrument(symbol, market, exchange_info), events, prices, sizes)
