"""The FEATURES_V1 schema: feature names, their order, the version string and every window.

Numpy only. The schema is data: it travels in the model bundle and in every feature table, and a
vector or table written under another version is refused (:class:`SchemaMismatch`).

>>> s = schema_for("perp", standardise_window_s=3600.0)
>>> s.names[-2:], s.standardise_window_s, s.warmup_samples
(('time_to_funding', 'funding_rate_bp'), 3600.0, 600)
>>> FeatureSchema.from_dict({**s.to_dict(), "version": "FEATURES_V0"})
Traceback (most recent call last):
...
training.features.schema.SchemaMismatch: version: 'FEATURES_V0' is not 'FEATURES_V1'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from typing import Any

import numpy as np

from training.errors import BadInputError
from training.errors import SchemaMismatchError

__all__ = [
    "FEATURES_VERSION",
    "MARKETS",
    "PERP_FEATURES",
    "SPOT_FEATURES",
    "FeatureSchema",
    "SchemaMismatch",
    "schema_for",
]

FEATURES_VERSION = "FEATURES_V1"
SPOT_FEATURES: tuple[str, ...] = (
    "ret_bp",  # mid log-return over the sample interval, basis points
    "spread_bp",  # (ask - bid) / mid
    "imbalance",  # top-N (bid size - ask size) / (bid size + ask size), in [-1, 1]
    "micro_bp",  # microprice - mid
    "rv_bp",  # rolling std of the interval returns
    "trade_sign_imb",  # (buys - sells) / trades over the trade window, in [-1, 1]
    "ofi",  # Cont order-flow imbalance at the best levels, decayed, / decayed best depth
    "autocorr_1",  # lag-1 autocorrelation of the interval returns, rolling window
    "autocorr_2",  # lag-2
    "vw_trade_delta",  # (buy notional - sell notional) / notional over the trade window
)
PERP_FEATURES: tuple[str, ...] = (*SPOT_FEATURES, "time_to_funding", "funding_rate_bp")
MARKETS: dict[str, tuple[str, ...]] = {"spot": SPOT_FEATURES, "perp": PERP_FEATURES}

_NS = 1_000_000_000


class SchemaMismatch(SchemaMismatchError):
    """A feature vector or stored schema does not match the FEATURES schema in use."""


@dataclass(frozen=True)
class FeatureSchema:
    """Everything that defines FEATURES_V1 vectors: names, order, version and windows.

    Stored in the model bundle (``to_dict``/``from_dict``). Windows are in seconds of exchange
    time and become whole samples. The standardisation window is meant to be 60-90 min
    (default 75; shorter ones are accepted for tests); ``z = (x - mean) / max(std, std_floor)``
    over the previous ``standardise_window_s`` of the session, clipped to ``+-z_clip``; a
    session is ``ready`` after ``warmup_samples`` (``min_periods_s`` and every raw lookback).
    Raw units: returns, spread, microprice offset and volatility in basis points; imbalances
    and autocorrelations in [-1, 1]; ``ofi`` in best-level depths.
    """

    market: str = "spot"
    version: str = FEATURES_VERSION
    names: tuple[str, ...] = SPOT_FEATURES
    sample_interval_s: float = 1.0
    standardise_window_s: float = 4500.0
    min_periods_s: float = 600.0
    top_n: int = 5
    rv_window_s: float = 60.0
    trade_window_s: float = 10.0
    ofi_halflife_s: float = 5.0
    autocorr_window_s: float = 60.0
    vwap_window_s: float = 300.0
    max_gap_intervals: int = 60
    z_clip: float = 10.0
    std_floor: float = 1e-6

    def __post_init__(self) -> None:
        if self.version != FEATURES_VERSION:
            raise SchemaMismatch(f"version: {self.version!r} is not {FEATURES_VERSION!r}")
        _check_market(self.market)
        if tuple(self.names) != MARKETS[self.market]:
            raise SchemaMismatch(f"names: {tuple(self.names)} != {self.market} FEATURES_V1 names")
        object.__setattr__(self, "names", tuple(self.names))
        for f in fields(self):
            if f.name.endswith("_s") and not float(getattr(self, f.name)) > 0.0:
                raise BadInputError(
                    f"{f.name}: must be > 0, got {getattr(self, f.name)!r}", field=f.name
                )
        if self.min_periods_s > self.standardise_window_s:
            raise BadInputError(
                "min_periods_s: must be <= standardise_window_s", field="min_periods_s"
            )
        if self.top_n < 1 or self.max_gap_intervals < 1:
            raise BadInputError("top_n and max_gap_intervals: must be >= 1", field="top_n")
        if not (self.z_clip > 0 and self.std_floor > 0):
            raise BadInputError("z_clip and std_floor: must be > 0", field="z_clip")
        if self.interval_ns < 1_000_000:
            raise BadInputError("sample_interval_s: must be >= 1 ms", field="sample_interval_s")

    @property
    def interval_ns(self) -> int:
        return round(self.sample_interval_s * _NS)

    def samples(self, seconds: float) -> int:
        """A window in seconds expressed in whole samples (at least 1)."""
        return max(1, round(seconds / self.sample_interval_s))

    @property
    def warmup_samples(self) -> int:
        """Samples of a session before ``ready``: min periods and every raw lookback filled."""
        lookbacks = (self.rv_window_s, self.autocorr_window_s, self.trade_window_s)
        return max(self.samples(self.min_periods_s), *(self.samples(s) + 1 for s in lookbacks))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["names"] = list(self.names)
        return d

    def windows(self) -> dict[str, Any]:
        """The overridable settings (everything but market, version and names)."""
        d = self.to_dict()
        for k in ("market", "version", "names"):
            d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSchema:
        """Inverse of ``to_dict``; refuses another version or unknown keys."""
        if d.get("version") != FEATURES_VERSION:
            raise SchemaMismatch(f"version: {d.get('version')!r} is not {FEATURES_VERSION!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SchemaMismatch(f"unknown schema keys: {unknown}")
        return cls(**{**d, "names": tuple(d.get("names", ()))})

    def check_vector(self, schema_version: str, values: Sequence[float] | np.ndarray) -> None:
        """Raise ``SchemaMismatch`` unless ``values`` is a finite vector of this schema.

        >>> schema_for("spot").check_vector("FEATURES_V0", [0.0] * 10)
        Traceback (most recent call last):
        ...
        training.features.schema.SchemaMismatch: schema version 'FEATURES_V0' != 'FEATURES_V1'
        """
        if schema_version != self.version:
            raise SchemaMismatch(f"schema version {schema_version!r} != {self.version!r}")
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (len(self.names),):
            raise SchemaMismatch(
                f"vector shape {arr.shape} != ({len(self.names)},) for {self.market}"
            )
        if not np.isfinite(arr).all():
            raise SchemaMismatch("vector has non-finite values")


def _check_market(market: str) -> None:
    if market not in MARKETS:
        raise BadInputError(f"market: {market!r} not in {sorted(MARKETS)}", field="market")


def schema_for(market: str, **overrides: Any) -> FeatureSchema:
    """The FEATURES_V1 schema of a market (``"spot"`` or ``"perp"``), windows overridable.

    >>> s = schema_for("perp", standardise_window_s=3600.0)
    >>> s.names[-2:], s.standardise_window_s
    (('time_to_funding', 'funding_rate_bp'), 3600.0)
    """
    _check_market(market)
    return replace(FeatureSchema(market=market, names=MARKETS[market]), **overrides)
