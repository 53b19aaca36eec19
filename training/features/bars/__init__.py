"""FEATURES_BARS_V1: bar features of 1-minute klines, one engine online and offline.

Light on purpose (numpy only): the Nautilus node imports it. The offline extractor (catalog
``BinanceBar``s -> feature tables, :mod:`training.features.bars.offline`) is imported from its
module; the Nautilus side is ``node.bar_feed``.
"""

from __future__ import annotations

from training.features.bars.engine import BAR_SAMPLE_SCALARS
from training.features.bars.engine import BarColumns
from training.features.bars.engine import BarFeatureEngine
from training.features.bars.engine import BarSample
from training.features.bars.engine import bar_samples_to_columns
from training.features.bars.schema import BAR_FEATURES
from training.features.bars.schema import FEATURES_BARS_VERSION
from training.features.bars.schema import BarFeatureSchema
from training.features.bars.schema import bar_schema
from training.features.bars.schema import schema_from_dict

__all__ = [
    "BAR_FEATURES",
    "BAR_SAMPLE_SCALARS",
    "FEATURES_BARS_VERSION",
    "BarColumns",
    "BarFeatureEngine",
    "BarFeatureSchema",
    "BarSample",
    "bar_samples_to_columns",
    "bar_schema",
    "schema_from_dict",
]
