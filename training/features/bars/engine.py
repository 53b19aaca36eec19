"""FEATURES_BARS_V1: the one streaming bar-feature engine, online (Nautilus bars) and offline.

Numpy only. One sample per bar, stamped with the bar's ``ts_event`` (a Binance kline's close
time): no clock and no look-ahead, every value uses this bar and the ones before it. Each raw
feature is standardised causally over the PREVIOUS ``standardise_window_bars`` bars of the
session (the FEATURES_V1 standardiser, :mod:`training.features._rolling`).

Sessions. Bars more than ``max_gap_bars`` intervals after the previous one start a new session
(``session`` increments, rolling state and warm-up restart); during warm-up ``ready`` is False
and ``z`` is all 0.0 (marked, never NaN). A bar at or before the previous bar's time is dropped
and counted (``stale``). A bar with impossible values (non-finite or non-positive price, high
below low, negative volume) raises :class:`~training.errors.BadInputError` naming the field.

>>> from training.features.bars.schema import bar_schema
>>> eng = BarFeatureEngine(bar_schema(min_periods_bars=2, standardise_window_bars=4,
...     rv_window_bars=2, autocorr_window_bars=2, flow_window_bars=1, vwap_window_bars=1))
>>> s = eng.on_bar(60_000_000_000, 100.0, 101.0, 99.0, 100.5, 10.0, 1005.0, 7.5, 12)
>>> round(float(s.raw[0]), 4), float(s.raw[2]), float(s.raw[5]), s.ready, s.session
(49.8754, 0.25, 0.5, False, 0)
>>> s = eng.on_bar(300_000_000_000, 100.0, 100.0, 100.0, 100.0, 0.0, 0.0, 0.0, 0)  # 4 min gap
>>> s.session, float(s.raw[0]), eng.resets
(1, 0.0, 1)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from training.errors import BadInputError
from training.features._rolling import Standardiser
from training.features._rolling import ret_stats
from training.features.bars.schema import BarFeatureSchema

__all__ = [
    "BAR_SAMPLE_SCALARS",
    "BarColumns",
    "BarFeatureEngine",
    "BarSample",
    "bar_samples_to_columns",
]


class BarSample(NamedTuple):
    """One bar's features: raw and standardised vectors plus the bar values the strategy uses.

    ``ready`` is False during a session's warm-up (``z`` is then all 0.0); ``vwap`` is the
    volume-weighted price of the last ``vwap_window_bars`` bars (quote / base volume; the close
    when nothing traded); ``realised_vol_bp`` repeats ``rv_bp``'s raw value.
    """

    ts_ns: int
    raw: np.ndarray
    z: np.ndarray
    ready: bool
    session: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    realised_vol_bp: float


BAR_SAMPLE_SCALARS: tuple[str, ...] = BarSample._fields[3:]
_DTYPES = {"ready": bool, "session": np.int64}


def bar_samples_to_columns(samples: list[BarSample], n_features: int) -> dict[str, np.ndarray]:
    """Stack samples into columns: ``ts``, ``raw`` (n, F), ``z`` (n, F) and one per scalar."""
    n = len(samples)
    out: dict[str, np.ndarray] = {
        "ts": np.fromiter((s.ts_ns for s in samples), dtype=np.int64, count=n),
        "raw": np.stack([s.raw for s in samples]) if n else np.zeros((0, n_features)),
        "z": np.stack([s.z for s in samples]) if n else np.zeros((0, n_features)),
    }
    for name in BAR_SAMPLE_SCALARS:
        values = (getattr(s, name) for s in samples)
        out[name] = np.fromiter(values, dtype=_DTYPES.get(name, np.float64), count=n)
    return out


@dataclass(frozen=True)
class BarColumns:
    """Klines as numpy columns, the offline input (``ts``: bar ``ts_event`` in ns)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    taker_buy_volume: np.ndarray
    trades: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


def _check(ts: int, o: float, h: float, lo: float, c: float, v: float, qv: float, tb: float,
           n: int) -> None:  # fmt: skip
    for name, price in (("open", o), ("high", h), ("low", lo), ("close", c)):
        if not (price > 0.0 and math.isfinite(price)):
            raise BadInputError(f"bar at {ts}: {name} must be a finite price > 0, got {price!r}",
                                field=name)  # fmt: skip
    if not h >= max(o, c, lo) or not lo <= min(o, c):
        raise BadInputError(f"bar at {ts}: high {h!r} / low {lo!r} do not bound open and close",
                            field="high")  # fmt: skip
    for name, amount in (("volume", v), ("quote_volume", qv), ("taker_buy_volume", tb)):
        if not (amount >= 0.0 and math.isfinite(amount)):
            raise BadInputError(f"bar at {ts}: {name} must be finite and >= 0, got {amount!r}",
                                field=name)  # fmt: skip
    if n < 0:
        raise BadInputError(f"bar at {ts}: trade count must be >= 0, got {n!r}", field="trades")


class BarFeatureEngine:
    """Bar-by-bar FEATURES_BARS_V1: feed klines, get one :class:`BarSample` per bar.

    ``on_bar`` is the online entry point (the Nautilus bar feed); ``run`` feeds numpy columns
    through the same ``on_bar`` for offline extraction, so both give the same numbers.
    """

    def __init__(self, schema: BarFeatureSchema) -> None:
        self.schema = schema
        self._nf = len(schema.names)
        self._gap_ns = schema.max_gap_bars * schema.interval_ns
        self._rv_w = schema.rv_window_bars
        self._ac_w = schema.autocorr_window_bars
        self._warm = schema.warmup_bars
        self.last_ts: int | None = None
        self.session = 0
        self.resets = 0
        self.stale = 0
        self.nonfinite = 0
        self.samples_emitted = 0
        self._reset_session()

    def _reset_session(self) -> None:
        s = self.schema
        self._n = 0
        self._prev_close: float | None = None
        self._rets: deque[float] = deque(maxlen=max(self._rv_w, self._ac_w))
        self._flow: deque[tuple[float, float]] = deque(maxlen=s.flow_window_bars)
        self._vw: deque[tuple[float, float]] = deque(maxlen=s.vwap_window_bars)
        self._std = Standardiser(s.standardise_window_bars, self._nf, s.std_floor, s.z_clip)

    def on_bar(
        self,
        ts_ns: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        quote_volume: float,
        taker_buy_volume: float,
        trades: int,
    ) -> BarSample | None:
        """One closed bar (base ``volume``, ``quote_volume``, taker-buy base volume, trade
        count); None when it is not after the previous bar (counted in ``stale``)."""
        _check(ts_ns, open, high, low, close, volume, quote_volume, taker_buy_volume, trades)
        if self.last_ts is not None:
            if ts_ns <= self.last_ts:
                self.stale += 1
                return None
            if ts_ns - self.last_ts > self._gap_ns:
                self.session += 1
                self.resets += 1
                self._reset_session()
        self.last_ts = ts_ns
        prev = open if self._prev_close is None else self._prev_close
        self._prev_close = close
        ret = math.log(close / prev) * 1e4
        rng = math.log(high / low) * 1e4
        body = (close - open) / (high - low) if high > low else 0.0

        flow = self._flow
        flow.append((taker_buy_volume, volume))
        fv = sum(f[1] for f in flow)
        imb = (2.0 * sum(f[0] for f in flow) - fv) / fv if fv > 0.0 else 0.0
        imb = max(-1.0, min(1.0, imb))
        vw = self._vw
        vw.append((quote_volume, volume))
        vv = sum(w[1] for w in vw)
        vwap = sum(w[0] for w in vw) / vv if vv > 0.0 else close
        rets = self._rets
        rets.append(ret)
        rv, ac1, ac2 = ret_stats(rets, self._rv_w, self._ac_w)

        raw = np.array(
            [ret, rng, body, math.log1p(volume), math.log1p(trades), imb, rv, ac1, ac2],
            dtype=np.float64,
        )
        finite = np.isfinite(raw)
        if not finite.all():  # overflowing inputs only; never let a NaN out
            self.nonfinite += 1
            raw[~finite] = 0.0
        if not math.isfinite(vwap):
            self.nonfinite += 1
            vwap = close
        ready = self._n >= self._warm
        z = self._std.z(raw) if ready else np.zeros(self._nf)
        self._std.push(raw)
        self._n += 1
        self.samples_emitted += 1
        return BarSample(ts_ns, raw, z, ready, self.session, open, high, low, close, volume,
                         vwap, float(raw[6]))  # fmt: skip

    def run(self, bars: BarColumns) -> list[BarSample]:
        """Every bar of ``bars`` (in the given order) through :meth:`on_bar`."""
        cols = (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                bars.quote_volume, bars.taker_buy_volume, bars.trades)  # fmt: skip
        out = []
        for row in zip(*(np.asarray(c).tolist() for c in cols), strict=True):
            s = self.on_bar(*row)
            if s is not None:
                out.append(s)
        return out
