"""The FEATURES_BARS_V1 schema: bar-feature names, their order, the version string, every window.

Numpy only. Like FEATURES_V1 (:mod:`training.features.schema`) the schema is data: it travels in
the model bundle and in every bar-feature table, and a vector or table of another version is
refused (:class:`~training.features.schema.SchemaMismatch`). It also answers the FEATURES_V1
attributes the training pipeline reads (``sample_interval_s``, ``interval_ns``,
``max_gap_intervals``, ``warmup_samples``), so a bar table goes through the same code.

>>> s = bar_schema(standardise_window_bars=120)
>>> s.version, s.names[:3], s.warmup_bars, s.max_gap_intervals
('FEATURES_BARS_V1', ('ret_bp', 'range_bp', 'body'), 120, 2)
>>> BarFeatureSchema.from_dict(s.to_dict()) == s
True
>>> s.check_vector("FEATURES_V1", [0.0] * 9)
Traceback (most recent call last):
...
training.features.schema.SchemaMismatch: schema version 'FEATURES_V1' != 'FEATURES_BARS_V1'
>>> BarFeatureSchema.from_dict({**s.to_dict(), "version": "FEATURES_V1"})
Traceback (most recent call last):
...
training.features.schema.SchemaMismatch: version: 'FEATURES_V1' is not 'FEATURES_BARS_V1'
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from typing import Any

from training.errors import BadInputError
from training.features.schema import MARKETS
from training.features.schema import FeatureSchema
from training.features.schema import SchemaMismatch

__all__ = [
    "BAR_FEATURES",
    "FEATURES_BARS_VERSION",
    "BarFeatureSchema",
    "bar_schema",
    "schema_from_dict",
]

FEATURES_BARS_VERSION = "FEATURES_BARS_V1"
BAR_FEATURES: tuple[str, ...] = (
    "ret_bp",  # close-to-close log return (the session's first bar: close / open), bp
    "range_bp",  # log(high / low), bp
    "body",  # (close - open) / (high - low), in [-1, 1]; 0 when high == low
    "log_volume",  # log(1 + base volume): standardised, the volume z-score
    "log_trades",  # log(1 + trade count): standardised, the trade-count z-score
    "taker_imb",  # (taker buy - taker sell) / volume over the flow window, in [-1, 1]
    "rv_bp",  # population std of ret_bp over the rv window
    "autocorr_1",  # lag-1 autocorrelation of ret_bp over the autocorr window, in [-1, 1]
    "autocorr_2",  # lag-2
)
_NS = 1_000_000_000


@dataclass(frozen=True)
class BarFeatureSchema:
    """Everything that defines FEATURES_BARS_V1 vectors; windows are counted in bars.

    ``z = (x - mean) / max(std, std_floor)`` over the previous ``standardise_window_bars`` bars
    of the session (default 240 = 4 h of 1-minute bars), clipped to ``+-z_clip``; a session is
    ``ready`` after ``warmup_bars`` (``min_periods_bars`` and every raw lookback). Consecutive
    bars more than ``max_gap_bars`` intervals apart start a new session (default 2: one missing
    minute is bridged, two are not). ``market`` records what the model was trained on; the
    features are the same for spot and perpetuals.
    """

    market: str = "spot"
    version: str = FEATURES_BARS_VERSION
    names: tuple[str, ...] = BAR_FEATURES
    bar_interval_s: float = 60.0
    standardise_window_bars: int = 240
    min_periods_bars: int = 120
    rv_window_bars: int = 30
    autocorr_window_bars: int = 60
    flow_window_bars: int = 5
    vwap_window_bars: int = 5
    max_gap_bars: int = 2
    z_clip: float = 10.0
    std_floor: float = 1e-6

    def __post_init__(self) -> None:
        if self.version != FEATURES_BARS_VERSION:
            raise SchemaMismatch(f"version: {self.version!r} is not {FEATURES_BARS_VERSION!r}")
        if self.market not in MARKETS:
            raise BadInputError(f"market: {self.market!r} not in {sorted(MARKETS)}", field="market")
        if tuple(self.names) != BAR_FEATURES:
            raise SchemaMismatch(f"names: {tuple(self.names)} != FEATURES_BARS_V1 names")
        object.__setattr__(self, "names", tuple(self.names))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_bars") and not (isinstance(value, int) and value >= 1):
                raise BadInputError(f"{f.name}: must be an int >= 1, got {value!r}", field=f.name)
        if self.min_periods_bars > self.standardise_window_bars:
            raise BadInputError(
                "min_periods_bars: must be <= standardise_window_bars", field="min_periods_bars"
            )
        if not self.bar_interval_s >= 1.0:
            raise BadInputError(
                f"bar_interval_s: must be >= 1, got {self.bar_interval_s!r}", field="bar_interval_s"
            )
        if not (self.z_clip > 0 and self.std_floor > 0):
            raise BadInputError("z_clip and std_floor: must be > 0", field="z_clip")

    @property
    def interval_ns(self) -> int:
        return round(self.bar_interval_s * _NS)

    @property
    def warmup_bars(self) -> int:
        """Bars of a session before ``ready``: min periods and every raw lookback filled."""
        return max(
            self.min_periods_bars,
            self.rv_window_bars,
            self.autocorr_window_bars,
            self.flow_window_bars,
            self.vwap_window_bars,
        )

    # the FEATURES_V1 names the training pipeline reads
    @property
    def sample_interval_s(self) -> float:
        return self.bar_interval_s

    @property
    def max_gap_intervals(self) -> int:
        return self.max_gap_bars

    @property
    def warmup_samples(self) -> int:
        return self.warmup_bars

    # FEATURES_V1's own implementations (same contract, one owner): ``to_dict``, ``windows``
    # (the overridable settings) and ``check_vector`` (SchemaMismatch unless a finite vector
    # of this version and length)
    to_dict = FeatureSchema.to_dict
    windows = FeatureSchema.windows
    check_vector = FeatureSchema.check_vector

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BarFeatureSchema:
        """Inverse of ``to_dict``; refuses another version or unknown keys."""
        if d.get("version") != FEATURES_BARS_VERSION:
            raise SchemaMismatch(f"version: {d.get('version')!r} is not {FEATURES_BARS_VERSION!r}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise SchemaMismatch(f"unknown schema keys: {unknown}")
        return cls(**{**d, "names": tuple(d.get("names", ()))})


def bar_schema(market: str = "spot", **overrides: Any) -> BarFeatureSchema:
    """FEATURES_BARS_V1 for ``market`` (``"spot"`` or ``"perp"``), windows overridable."""
    return replace(BarFeatureSchema(market=market), **overrides)


def schema_from_dict(d: dict[str, Any]) -> FeatureSchema | BarFeatureSchema:
    """The feature schema a stored dict describes, by its ``version`` (FEATURES_BARS_V1 or
    FEATURES_V1; any other version is refused by ``FeatureSchema.from_dict``).

    >>> type(schema_from_dict(bar_schema().to_dict())).__name__
    'BarFeatureSchema'
    >>> schema_from_dict(FeatureSchema().to_dict()) == FeatureSchema()
    True
    """
    if d.get("version") == FEATURES_BARS_VERSION:
        return BarFeatureSchema.from_dict(d)
    return FeatureSchema.from_dict(d)
