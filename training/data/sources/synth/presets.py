"""What defines a synthetic market: regimes, the jump chain between them, and named presets.

A :class:`SynthConfig` is everything the simulator needs; the same config (and seed) always
gives the same bytes. ``realistic`` (the default) moves at the bp scale of real BTCUSDT;
``micro`` is the project's first, tick-scale market.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from training.errors import BadInputError

__all__ = [
    "CALM",
    "DEFAULT_REGIMES",
    "DEFAULT_TRANSITIONS",
    "MICRO_REGIMES",
    "NULL_REGIMES",
    "PRESETS",
    "REALISTIC_REGIMES",
    "TRENDING",
    "VOLATILE",
    "RegimeParams",
    "SynthConfig",
    "preset",
]

CALM, TRENDING, VOLATILE = 0, 1, 2


@dataclass(frozen=True)
class RegimeParams:
    """What one regime does to the market (units: bp of price, ladder levels, seconds, base size).

    The fair value's log-price (in bp) is a random walk with volatility ``vol_bp`` per
    sqrt(second) and drift ``drift_bp`` per second (sign drawn per segment), plus a
    mean-reverting deviation (``noise_bp`` per sqrt(second), half-life ``half_life_s``; ``None``:
    none). The spread is ``1 + Poisson(spread_extra)`` ladder levels, redrawn with probability
    ``spread_change`` per message; ``depth`` is the mean size of a level (deeper levels larger),
    ``depth_tilt`` skews it toward the drift side; ``refresh`` size updates per side per
    message; ``sign_stay`` is P(next trade has the previous sign) and ``sign_bias`` P(a trade
    follows the drift direction regardless).
    """

    name: str
    mean_minutes: float
    msg_rate: float
    vol_bp: float
    drift_bp: float
    noise_bp: float
    half_life_s: float | None
    spread_extra: float
    spread_change: float
    depth: float
    depth_tilt: float
    refresh: float
    trade_rate: float
    sign_stay: float
    sign_bias: float


# Calibrated on real Binance BTCUSDT (../shared/data, Aug 2024, a gently trending 11 minutes:
# 1-s return std 1.1 bp spot / 1.2 bp perp, 1-min 6.8-10.6 bp, drift ~0.06 bp/s): trending
# moves like that window with a stronger drift (0.1 bp/s), calm about half as much and
# mean-reverting at the second scale, volatile three times as much. Spreads in 0.2 bp levels:
# ~0.2 / 0.4 / 1 bp (the real top of book is one 0.01 tick, ~0.002 bp).
REALISTIC_REGIMES: tuple[RegimeParams, ...] = (
    RegimeParams("calm", 20.0, 12.0, vol_bp=0.2, drift_bp=0.0, noise_bp=0.7,
        half_life_s=1.0, spread_extra=0.1, spread_change=0.05, depth=1.0, depth_tilt=0.0,
        refresh=1.0, trade_rate=3.0, sign_stay=0.5, sign_bias=0.0),
    RegimeParams("trending", 12.0, 20.0, vol_bp=1.1, drift_bp=0.1, noise_bp=0.0,
        half_life_s=None, spread_extra=1.0, spread_change=0.1, depth=0.6, depth_tilt=0.5,
        refresh=1.5, trade_rate=8.0, sign_stay=0.85, sign_bias=0.5),
    RegimeParams("volatile", 6.0, 40.0, vol_bp=3.3, drift_bp=0.0, noise_bp=0.0,
        half_life_s=None, spread_extra=4.0, spread_change=0.2, depth=0.15, depth_tilt=0.0,
        refresh=2.0, trade_rate=15.0, sign_stay=0.6, sign_bias=0.0),
)  # fmt: skip
# The first market of this project (preset ``micro``, ``level_bp=0``): prices move a few ticks
# on a dense one-tick ladder, 0.003-0.014 bp per sqrt(second) at 42,000 — far below fees.
_TICK_BP = 0.01 / 42_000.0 * 1e4
MICRO_REGIMES: tuple[RegimeParams, ...] = (
    RegimeParams("calm", 20.0, 12.0, vol_bp=0.0, drift_bp=0.0, noise_bp=1.5 * _TICK_BP,
        half_life_s=1.0, spread_extra=0.1, spread_change=0.05, depth=1.0, depth_tilt=0.0,
        refresh=1.0, trade_rate=3.0, sign_stay=0.5, sign_bias=0.0),
    RegimeParams("trending", 12.0, 20.0, vol_bp=1.5 * _TICK_BP, drift_bp=_TICK_BP, noise_bp=0.0,
        half_life_s=None, spread_extra=1.0, spread_change=0.1, depth=0.6, depth_tilt=0.5,
        refresh=1.5, trade_rate=8.0, sign_stay=0.85, sign_bias=0.5),
    RegimeParams("volatile", 6.0, 40.0, vol_bp=6.0 * _TICK_BP, drift_bp=0.0, noise_bp=0.0,
        half_life_s=None, spread_extra=5.0, spread_change=0.2, depth=0.15, depth_tilt=0.0,
        refresh=2.0, trade_rate=15.0, sign_stay=0.6, sign_bias=0.0),
)  # fmt: skip
# The null market (preset ``null``): the realistic regimes' switching of volatility, spread,
# depth, message and trade intensity, with nothing that lets the past predict the sign of the
# next move. Drift, sign bias and depth tilt are zero; the calm regime's mean-reverting
# deviation (predictable at the second scale) becomes plain random-walk volatility of a similar
# size over a minute. Trade signs keep their persistence: in this simulator a trade only
# consumes the best level and never moves the fair value, so it carries no price information.
NULL_REGIMES: tuple[RegimeParams, ...] = tuple(
    RegimeParams(**{**r.__dict__, "drift_bp": 0.0, "sign_bias": 0.0, "depth_tilt": 0.0,
                    "noise_bp": 0.0, "half_life_s": None,
                    "vol_bp": r.vol_bp if r.noise_bp == 0 else max(r.vol_bp, 0.3)})
    for r in REALISTIC_REGIMES
)  # fmt: skip
DEFAULT_REGIMES = REALISTIC_REGIMES
# Jump chain (row: from, column: to; zero diagonal): calm and trending alternate mostly,
# volatile bursts come from either and relax mostly to calm.
DEFAULT_TRANSITIONS: tuple[tuple[float, ...], ...] = (
    (0.0, 0.6, 0.4),
    (0.6, 0.0, 0.4),
    (0.7, 0.3, 0.0),
)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic market; the same config always gives the same bytes.

    ``day_seconds`` < 86400 simulates only the first part of each UTC day (tests, demos).
    The book's levels sit ``level_bp`` of ``start_price`` apart (a whole number of instrument
    ticks, at least one; ``0``: every tick), so a realistic bp-scale move shifts the ladder by a
    few levels per message, not by thousands of ticks. ``preset("micro")`` is the old tick-scale
    market.
    Regime dwell times are ``min_segment_s + Exp(mean - min_segment_s)`` seconds. ``ts_init``
    is ``ts_event`` plus a uniform ``latency_ms`` jitter, made non-decreasing (one TCP stream),
    so a crowded burst can see a little more latency than the range.
    """

    symbol: str = "BTCUSDT"
    market: Literal["spot", "usdm"] = "spot"
    days: int = 1
    seed: int = 0
    start: str = "2024-01-01"
    day_seconds: int = 86_400
    step_ms: int = 25
    levels: int = 20
    level_bp: float = 0.2
    start_price: float = 42_000.0
    min_segment_s: float = 60.0
    latency_ms: tuple[float, float] = (1.0, 20.0)
    regimes: tuple[RegimeParams, ...] = DEFAULT_REGIMES
    transitions: tuple[tuple[float, ...], ...] = DEFAULT_TRANSITIONS

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> BadInputError:
            return BadInputError(f"SynthConfig.{name}: {why}", field=name)

        if self.market not in ("spot", "usdm"):
            raise bad("market", f"must be 'spot' or 'usdm', got {self.market!r}")
        if self.days < 1:
            raise bad("days", f"must be >= 1, got {self.days}")
        try:
            datetime.date.fromisoformat(self.start)
        except ValueError as exc:
            raise bad("start", f"not an ISO date: {self.start!r}") from exc
        if not 0 < self.day_seconds <= 86_400:
            raise bad("day_seconds", f"must be in (0, 86400], got {self.day_seconds}")
        if self.step_ms < 1 or (self.day_seconds * 1000) % self.step_ms:
            raise bad("step_ms", f"must be >= 1 and divide the day, got {self.step_ms}")
        if self.levels < 2:
            raise bad("levels", f"must be >= 2, got {self.levels}")
        if not (math.isfinite(self.level_bp) and 0 <= self.level_bp <= 100):
            raise bad("level_bp", f"must be in [0, 100], got {self.level_bp}")
        if not (math.isfinite(self.start_price) and self.start_price > 0):
            raise bad("start_price", f"must be positive, got {self.start_price}")
        lo, hi = self.latency_ms
        if not 0 <= lo <= hi:
            raise bad("latency_ms", f"need 0 <= low <= high, got {self.latency_ms}")
        k = len(self.regimes)
        if k < 2:
            raise bad("regimes", "need at least two regimes")
        for i, r in enumerate(self.regimes):
            if r.mean_minutes * 60 <= self.min_segment_s:
                raise bad(f"regimes[{i}].mean_minutes", "must exceed min_segment_s")
            if r.msg_rate <= 0 or r.msg_rate * self.step_ms / 1000 > 1:
                raise bad(f"regimes[{i}].msg_rate", f"must be in (0, {1000 / self.step_ms}]")
            if not 0 <= r.trade_rate <= r.msg_rate:
                raise bad(f"regimes[{i}].trade_rate", "must be in [0, msg_rate]")
            for f in ("vol_bp", "drift_bp", "noise_bp"):
                if not (math.isfinite(getattr(r, f)) and getattr(r, f) >= 0):
                    raise bad(f"regimes[{i}].{f}", f"must be finite and >= 0, got {getattr(r, f)}")
            if r.half_life_s is not None and not r.half_life_s > 0:
                raise bad(f"regimes[{i}].half_life_s", f"must be > 0 or None, got {r.half_life_s}")
            if r.depth <= 0 or not 0 <= r.depth_tilt < 1:
                raise bad(f"regimes[{i}].depth", "depth > 0 and 0 <= depth_tilt < 1 required")
        t = np.asarray(self.transitions, dtype=np.float64)
        if t.shape != (k, k) or (t < 0).any() or np.diag(t).any():
            raise bad("transitions", f"must be {k}x{k}, non-negative, zero diagonal")
        if not np.allclose(t.sum(axis=1), 1.0):
            raise bad("transitions", "rows must sum to 1")

    @property
    def steps_per_day(self) -> int:
        return self.day_seconds * 1000 // self.step_ms

    @property
    def regime_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regimes)

    def first_day(self) -> datetime.date:
        return datetime.date.fromisoformat(self.start)

    def level_ticks(self, tick: float) -> int:
        """Instrument ticks between adjacent book levels.

        >>> SynthConfig().level_ticks(0.01), SynthConfig(level_bp=0).level_ticks(0.01)
        (84, 1)
        """
        return max(1, round(self.level_bp * 1e-4 * self.start_price / tick))


PRESETS: dict[str, dict[str, object]] = {
    "realistic": {},
    "micro": {"level_bp": 0.0, "regimes": MICRO_REGIMES},
    "null": {"regimes": NULL_REGIMES},
}


def preset(name: str, **overrides: object) -> SynthConfig:
    """A named market (``realistic``: the default; ``micro``: tick-scale moves; ``null``: the
    realistic regimes with no predictable sign, where no edge exists) with overrides.

    >>> preset("micro", days=2).level_bp, preset("realistic").regimes[1].drift_bp
    (0.0, 0.1)
    >>> [r.drift_bp + r.sign_bias + r.depth_tilt + r.noise_bp for r in preset("null").regimes]
    [0.0, 0.0, 0.0]
    """
    if name not in PRESETS:
        raise BadInputError(f"preset: {name!r} not in {sorted(PRESETS)}", field="preset")
    return SynthConfig(**{**PRESETS[name], **overrides})  # type: ignore[arg-type]
