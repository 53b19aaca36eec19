"""FEATURES_BARS_V1 schema: data that round-trips, refuses other versions and bad windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.errors import BadInputError
from training.errors import SchemaMismatchError
from training.features import FeatureSchema
from training.features import SchemaMismatch
from training.features import schema_for
from training.features.bars import BAR_FEATURES
from training.features.bars import FEATURES_BARS_VERSION
from training.features.bars import BarFeatureSchema
from training.features.bars import bar_schema


def test_round_trip_through_json_keeps_every_window() -> None:
    s = bar_schema("perp", standardise_window_bars=180, max_gap_bars=3, z_clip=6.0)
    back = BarFeatureSchema.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.market == "perp" and back.standardise_window_bars == 180
    assert s.to_dict()["names"] == list(BAR_FEATURES) and s.version == "FEATURES_BARS_V1"
    assert set(s.windows()) == set(s.to_dict()) - {"market", "version", "names"}
    # the FEATURES_V1 attributes the training pipeline reads
    assert (s.sample_interval_s, s.interval_ns) == (60.0, 60_000_000_000)
    assert (s.max_gap_intervals, s.warmup_samples) == (3, s.warmup_bars)


def test_defaults_suit_one_minute_bars() -> None:
    s = bar_schema()
    assert s.standardise_window_bars == 240 and s.min_periods_bars == 120
    assert s.warmup_bars == 120  # two hours of a session before the first ready bar
    assert bar_schema(autocorr_window_bars=150, min_periods_bars=100).warmup_bars == 150


@pytest.mark.parametrize("version", ["FEATURES_V1", "FEATURES_BARS_V0", None])
def test_another_version_is_refused(version: str | None) -> None:
    d = {**bar_schema().to_dict(), "version": version}
    with pytest.raises(SchemaMismatch, match="FEATURES_BARS_V1"):
        BarFeatureSchema.from_dict(d)
    with pytest.raises(SchemaMismatchError):
        BarFeatureSchema(version=str(version))


def test_the_two_schemas_refuse_each_other() -> None:
    with pytest.raises(SchemaMismatch):
        FeatureSchema.from_dict(bar_schema().to_dict())
    with pytest.raises(SchemaMismatch):
        BarFeatureSchema.from_dict(schema_for("spot").to_dict())


def test_unknown_keys_and_other_names_are_refused() -> None:
    with pytest.raises(SchemaMismatch, match="unknown schema keys: \\['rv_window_s'\\]"):
        BarFeatureSchema.from_dict({**bar_schema().to_dict(), "rv_window_s": 60.0})
    with pytest.raises(SchemaMismatch, match="names"):
        BarFeatureSchema.from_dict({**bar_schema().to_dict(), "names": list(BAR_FEATURES[::-1])})


def test_check_vector_refuses_another_version_shape_or_nan() -> None:
    s = bar_schema()
    s.check_vector(FEATURES_BARS_VERSION, np.zeros(len(BAR_FEATURES)))
    with pytest.raises(SchemaMismatch, match="'FEATURES_V1' != 'FEATURES_BARS_V1'"):
        s.check_vector("FEATURES_V1", np.zeros(len(BAR_FEATURES)))
    with pytest.raises(SchemaMismatch, match="shape"):
        s.check_vector(FEATURES_BARS_VERSION, np.zeros(10))  # a FEATURES_V1 spot vector
    with pytest.raises(SchemaMismatch, match="non-finite"):
        s.check_vector(FEATURES_BARS_VERSION, [np.nan, *[0.0] * 8])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"rv_window_bars": 0}, "rv_window_bars"),
        ({"standardise_window_bars": 2.5}, "standardise_window_bars"),
        ({"min_periods_bars": 300}, "min_periods_bars"),
        ({"bar_interval_s": 0.0}, "bar_interval_s"),
        ({"market": "options"}, "market"),
    ],
)
def test_bad_windows_name_the_field(override: dict, field: str) -> None:
    with pytest.raises(BadInputError) as err:
        bar_schema(**{"market": "spot", **override})
    assert err.value.field == field and field in str(err.value)
