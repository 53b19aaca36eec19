"""FEATURES_V1 inside Nautilus: the same ``FeatureEngine`` fed from book deltas and trades.

:class:`NautilusFeatureFeed` converts Nautilus data objects into engine calls; the strategy owns
one and forwards its ``on_order_book_deltas`` / ``on_trade_tick`` / ``on_funding_rate``
callbacks. :class:`FeatureActor` is the stand-alone actor (parity tests, feature recording).
Run with ``DataEngineConfig(buffer_deltas=True)`` so each callback gets one whole exchange
message (deltas up to ``F_LAST``), exactly what the offline extractor replays.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import FIXED_SCALAR
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from training.data.fixed import decode_fixed
from training.features import BookTop
from training.features import FeatureEngine
from training.features import FeatureSample
from training.features import FeatureSchema
from training.features import schema_for

if TYPE_CHECKING:
    from training.data.catalog import MarketCatalog
    from training.data.catalog import SymbolDay

__all__ = ["FeatureActor", "FeatureActorConfig", "NautilusFeatureFeed", "backtest_features"]

_SCALAR = float(FIXED_SCALAR)  # raw fixed-point int -> float, exactly as ``as_double()``
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _capsule_rows(capsule: object, width: int) -> tuple[bytes, int]:
    """The ``CVec`` of ``OrderBookDelta_t`` behind ``OrderBookDelta.capsule_from_list``."""
    cvec = _capsule_pointer(capsule, None)
    ptr = ctypes.c_void_p.from_address(cvec).value
    n = ctypes.c_size_t.from_address(cvec + ctypes.sizeof(ctypes.c_void_p)).value
    return ctypes.string_at(ptr, n * width), n


class _DeltaLayout:
    """Byte offsets of ``OrderBookDelta_t`` fields, found by probing known deltas.

    Decoding a whole queue of deltas from their C structs with numpy costs a small fraction of
    any per-delta Python accessor. :meth:`probe` returns ``None`` (callers fall back to
    ``__getstate__``) unless every field is found exactly once and decodes back bit for bit.
    """

    def __init__(self, width: int, action: int, side: int, price: int, size: int) -> None:
        self.width, self.action, self.side, self.price, self.size = width, action, side, price, size

    @classmethod
    def probe(cls) -> _DeltaLayout | None:
        iid = InstrumentId.from_str("PROBE.LAYOUT")
        acts, sides = [1, 2, 3, 1, 2, 3, 2, 1], [1, 2, 2, 1, 1, 2, 1, 2]
        deltas = [
            OrderBookDelta(
                iid,
                BookAction(a),
                BookOrder(OrderSide(sd), Price(61234.567 + 3 * i, 3), Quantity(0.5 + i, 6), 0),
                0,
                0,
                0x0101010101010101 * (i + 1),
                i,
            )
            for i, (a, sd) in enumerate(zip(acts, sides, strict=True))
        ]
        try:
            capsule = OrderBookDelta.capsule_from_list(deltas)
            head, _ = _capsule_rows(capsule, 64)  # every OrderBookDelta_t is wider than 64 bytes
            t0, t1 = (0x0101010101010101 * k for k in (1, 2))
            off0, off1 = head.find(t0.to_bytes(8, "little")), head.find(t1.to_bytes(8, "little"))
            if off0 < 0 or off1 <= off0:
                return None
            width = off1 - off0
            raw, n = _capsule_rows(capsule, width)
            rows = np.frombuffer(raw, np.uint8).reshape(n, width)
            state = deltas[0].__getstate__()
            price = raw[:width].find(state[3].to_bytes(16, "little"))
            size = raw[:width].find(state[5].to_bytes(16, "little"))
            act = [j for j in range(width) if rows[:, j].tolist() == acts]
            side = [j for j in range(width) if rows[:, j].tolist() == sides]
            if len(act) != 1 or len(side) != 1 or price < 0 or size < 0:
                return None
            layout = cls(width, act[0], side[0], price, size)
            a, sd, p, q = layout.decode(deltas)
        except Exception:  # an unexpected layout: the caller falls back to __getstate__
            return None
        want = [(int(d.action), int(d.order.side)) for d in deltas]
        prices = [d.order.price.as_double() for d in deltas]
        sizes = [d.order.size.as_double() for d in deltas]
        ok = list(zip(a, sd, strict=True)) == want and p == prices and q == sizes
        return layout if ok else None

    def decode(
        self, deltas: list[OrderBookDelta]
    ) -> tuple[list[int], list[int], list[float], list[float]]:
        """``(actions, sides, prices, sizes)``; prices/sizes bit-identical to ``as_double()``."""
        capsule = OrderBookDelta.capsule_from_list(deltas)
        raw, n = _capsule_rows(capsule, self.width)
        rows = np.frombuffer(raw, np.uint8).reshape(n, self.width)
        fixed = np.concatenate(  # prices then sizes, as (2n, 17) raw int128 + precision
            [rows[:, self.price : self.price + 17], rows[:, self.size : self.size + 17]]
        )
        values = _decode_fixed(fixed)
        return (
            rows[:, self.action].tolist(),
            rows[:, self.side].tolist(),
            values[:n].tolist(),
            values[n:].tolist(),
        )


_K = np.arange(17, dtype=np.uint64)  # k = 16 - precision: raw = units * 10**k exactly
_POW10 = 10.0 ** np.arange(17)  # exact doubles
_POW10_U = np.array([10**k for k in range(17)], dtype=np.uint64)
_INV5 = np.array([pow(5**k, -1, 2**64) for k in range(17)], dtype=np.uint64)
_MASK = np.array([2 ** (64 - k) - 1 for k in range(17)], dtype=np.uint64)


def _decode_fixed(fixed: np.ndarray) -> np.ndarray:
    """``(n, 17)`` bytes of Nautilus ``Price_t``/``Quantity_t`` -> ``raw / 1e16`` as float64.

    A raw is ``units * 10**k`` (``k = 16 - precision``): ``units`` is recovered from the low
    64 bits with the inverse of ``5**k`` mod 2**64, and ``float(units) * 10.0**k`` is one
    correctly rounded product, i.e. ``(double)raw`` as Nautilus computes it. Rows that do not
    check out exactly (negative, ``units >= 2**53``) go through ``decode_fixed``.
    """
    words = np.ascontiguousarray(fixed[:, :16]).view(np.uint64)
    lo, hi = words[:, 0], words[:, 1]
    precision = fixed[:, 16].astype(np.intp)
    k = 16 - np.minimum(precision, 16)
    units = ((lo >> _K[k]) * _INV5[k]) & _MASK[k]
    value = units.astype(np.float64) * _POW10[k]
    # units * 10**k has raw's low word; the float value (relative error 2**-53, so under
    # 2**-11 in units of 2**64 here) pins the high word too
    high = hi.astype(np.float64) + lo.astype(np.float64) * 2.0**-64
    exact = (
        (precision <= 16)
        & (units < 2**53)
        & (units * _POW10_U[k] == lo)
        & (np.abs(value * 2.0**-64 - high) < 0.5)
    )
    if not exact.all():
        buf = pa.py_buffer(np.ascontiguousarray(fixed[:, :16]))
        array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(fixed), [None, buf])
        return decode_fixed(array)
    return value / 1e16


_LAYOUT = _DeltaLayout.probe()


class NautilusFeatureFeed:
    """Feeds one ``FeatureEngine`` from Nautilus objects; every emitted sample goes to ``sink``.

    Prices and sizes enter as ``raw / FIXED_SCALAR``, bit for bit ``as_double()`` (the float the
    offline catalog read gives), and the message time is the ``ts_event`` of its last delta.
    Messages that cannot reach the next sample boundary are only queued and decoded in one go
    when the engine next samples (book state is read only then, so the samples are identical);
    call :meth:`flush` to bring ``engine``'s book up to date in between.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        sink: Callable[[FeatureSample], None] | None = None,
    ) -> None:
        self.engine = FeatureEngine(schema)
        self.sink = sink
        self.last: FeatureSample | None = None
        self._events = 0
        self._pending: list[OrderBookDeltas] = []

    @property
    def events(self) -> int:
        """Book deltas (queued ones included) and trades received so far."""
        return self._events + sum(len(m.deltas) for m in self._pending)

    def _emit(self, samples: list[FeatureSample]) -> list[FeatureSample]:
        if samples:
            self.last = samples[-1]
            if self.sink is not None:
                for s in samples:
                    self.sink(s)
        return samples

    def _apply(self, messages: list[OrderBookDeltas], due: bool) -> list[FeatureSample]:
        """Decode ``messages`` in one go. The queued ones (all but a ``due`` last one) cannot
        reach the next sample boundary, so the engine takes them as one message, then ``due``."""
        items = [d for m in messages for d in m.deltas]
        self._events += len(items)
        if _LAYOUT is not None:
            actions, sides, prices, sizes = _LAYOUT.decode(items)
        else:
            # one call per delta, against ~8 object creations via ``d.order.price.as_double()``
            _, actions, sides, p_raw, _, s_raw, *_ = zip(
                *[d.__getstate__() for d in items], strict=True
            )
            prices = [p / _SCALAR for p in p_raw]
            sizes = [q / _SCALAR for q in s_raw]
        engine = self.engine
        if not due:
            return engine.on_deltas(messages[-1].ts_event, actions, sides, prices, sizes)
        if len(messages) == 1:
            return engine.on_deltas(messages[0].ts_event, actions, sides, prices, sizes)
        k = len(items) - len(messages[-1].deltas)
        out = engine.on_deltas(messages[-2].ts_event, actions[:k], sides[:k], prices[:k], sizes[:k])
        return out + engine.on_deltas(
            messages[-1].ts_event, actions[k:], sides[k:], prices[k:], sizes[k:]
        )

    def flush(self) -> None:
        """Apply the queued messages to ``engine``'s book (they never reach a sample boundary)."""
        if self._pending:
            pending, self._pending = self._pending, []
            self._emit(self._apply(pending, due=False))

    def top(self) -> BookTop | None:
        """The book's top now, the queued messages applied (``None``: no usable book)."""
        self.flush()
        return self.engine.top()

    def _due(self, ts_event: int) -> bool:
        next_t = self.engine.next_t
        return next_t is None or ts_event >= next_t

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> list[FeatureSample]:
        if not self._due(deltas.ts_event):
            self._pending.append(deltas)
            return []
        pending, self._pending = self._pending, []
        pending.append(deltas)
        return self._emit(self._apply(pending, due=True))

    def on_trade_tick(self, tick: TradeTick) -> list[FeatureSample]:
        self._events += 1
        if self._due(tick.ts_event):
            self.flush()
        return self._emit(
            self.engine.on_trade(
                tick.ts_event,
                tick.price.as_double(),
                tick.size.as_double(),
                int(tick.aggressor_side),
            )
        )

    def on_funding_rate(self, update: FundingRateUpdate) -> list[FeatureSample]:
        return self.on_funding(update.ts_event, float(update.rate))

    def on_funding(self, ts_event: int, rate: float) -> list[FeatureSample]:
        """A funding rate (fraction per period) known from ``ts_event``: a catalog's
        ``FundingRateUpdate`` or the rate in Binance's live mark price stream."""
        if self._due(ts_event):
            self.flush()
        return self._emit(self.engine.on_funding(ts_event, rate))


class FeatureActorConfig(ActorConfig, frozen=True):
    """``schema`` is a ``FeatureSchema.to_dict()``; default: the market's FEATURES_V1."""

    instrument_id: str
    market: str = "spot"
    schema: dict | None = None
    keep_samples: bool = True


class FeatureActor(Actor):
    """Computes FEATURES_V1 online; keeps the samples (``samples``) unless told not to."""

    def __init__(self, config: FeatureActorConfig) -> None:
        super().__init__(config)
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        schema = (
            FeatureSchema.from_dict(config.schema) if config.schema else schema_for(config.market)
        )
        self.samples: list[FeatureSample] = []
        self.feed = NautilusFeatureFeed(
            schema, self.samples.append if config.keep_samples else None
        )

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP, managed=False)
        self.subscribe_trade_ticks(self.instrument_id)
        if self.feed.engine.schema.market == "perp":
            self.subscribe_funding_rates(self.instrument_id)

    def on_stop(self) -> None:
        self.feed.flush()

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.feed.on_order_book_deltas(deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.feed.on_trade_tick(tick)

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.feed.on_funding_rate(funding_rate)


def backtest_features(
    catalog: MarketCatalog, symbol_day: SymbolDay, schema: FeatureSchema
) -> tuple[list[FeatureSample], dict[str, float]]:
    """Run a :class:`FeatureActor` over one catalog symbol-day in a real ``BacktestEngine``.

    Venue ``BINANCE`` with an L2_MBP book, ``DataEngineConfig(buffer_deltas=True)``, the day's
    deltas and trades read through ``ParquetDataCatalog.query`` (deltas added first, so on equal
    ``ts_init`` they come first, as in the offline extractor). Returns the samples and timings
    (``load_s``, ``run_s``, ``events``).
    """
    from node.engine import binance_engine
    from node.engine import symbol_day_data

    t0 = time.perf_counter()
    instrument = catalog.instrument(symbol_day.instrument_id)
    data = symbol_day_data(catalog, symbol_day)
    engine = binance_engine(
        instrument,
        schema.market,
        trader_id="FEATURES-001",
        starting_quote=10_000_000,
        starting_base=1_000,
    )
    for items in data:
        engine.add_data(items)
    actor = FeatureActor(
        FeatureActorConfig(
            instrument_id=symbol_day.instrument_id, market=schema.market, schema=schema.to_dict()
        )
    )
    engine.add_actor(actor)
    t1 = time.perf_counter()
    try:
        engine.run()
        t2 = time.perf_counter()
    finally:
        engine.dispose()
    stats = {"load_s": t1 - t0, "run_s": t2 - t1, "events": float(actor.feed.events)}
    return list(actor.samples), stats
