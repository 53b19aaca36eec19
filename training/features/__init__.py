"""FEATURES_V1: the schema and the one streaming engine (online in the node, offline here).

Light on purpose (numpy only): the Nautilus node and Serve replicas import it. The offline
extractor (:mod:`training.features.offline`, Parquet) and the Ray-parallel cache
(:mod:`training.features.cache`) are imported from their modules.
"""

from __future__ import annotations

from training.features.engine import SAMPLE_SCALARS
from training.features.engine import BookTop
from training.features.engine import FeatureEngine
from training.features.engine import FeatureSample
from training.features.engine import samples_to_columns
from training.features.schema import FEATURES_VERSION
from training.features.schema import PERP_FEATURES
from training.features.schema import SPOT_FEATURES
from training.features.schema import FeatureSchema
from training.features.schema import SchemaMismatch
from training.features.schema import schema_for

__all__ = [
    "FEATURES_VERSION",
    "PERP_FEATURES",
    "SAMPLE_SCALARS",
    "SPOT_FEATURES",
    "BookTop",
    "FeatureEngine",
    "FeatureSample",
    "FeatureSchema",
    "SchemaMismatch",
    "samples_to_columns",
    "schema_for",
]
