"""Parallel, cached FEATURES_V1 extraction: one Ray task per symbol-day, Parquet on disk.

A cached table is keyed by the SHA-256 of the symbol-day's partition files (and ground-truth
labels, when present) plus the feature schema (version and every window), so a second sweep on
the same data reads Parquet instead of replaying the book. Each day starts a fresh engine
(:func:`training.features.offline.extract_features`), which makes days independent tasks.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.errors import BadInputError
from training.errors import SchemaMismatchError
from training.features.offline import extract_features
from training.features.offline import market_of
from training.features.offline import read_features
from training.features.offline import write_table
from training.features.schema import FeatureSchema
from training.features.schema import schema_for

__all__ = ["CacheResult", "cache_key", "cache_path", "cached_features", "load_tables"]

CACHE_DIRNAME = ".feature_cache"


@dataclass(frozen=True)
class CacheResult:
    """Cached feature files in symbol-day order, and how many were computed vs. reused."""

    paths: dict[SymbolDay, Path]
    hits: int
    misses: int


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(catalog: MarketCatalog, sd: SymbolDay, schema: FeatureSchema) -> str:
    """SHA-256 over the symbol-day's data files (by kind) and the schema's JSON."""
    h = hashlib.sha256()
    h.update(f"{sd.instrument_id}/{sd.day.isoformat()}\n".encode())
    files = dict(catalog.files(sd))
    labels = catalog.labels_path(sd)
    if labels.exists():
        files["labels"] = labels
    for kind in sorted(files):
        h.update(f"{kind}:{_file_sha256(Path(files[kind]))}\n".encode())
    h.update(json.dumps(schema.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def cache_path(cache_dir: str | Path, sd: SymbolDay, key: str) -> Path:
    """``CACHE/<instrument_id>/<YYYY-MM-DD>-<key[:16]>.parquet``."""
    return Path(cache_dir) / sd.instrument_id / f"{sd.day.isoformat()}-{key[:16]}.parquet"


def _extract_to(catalog_root: str, symbol: str, day: str, schema: dict, path: str) -> str:
    """Worker body: extract one symbol-day and write it atomically."""
    catalog = MarketCatalog(catalog_root)
    table = extract_features(
        catalog, symbol, datetime.date.fromisoformat(day), FeatureSchema.from_dict(schema)
    )
    return str(write_table(table, Path(path)))


def cached_features(
    catalog: MarketCatalog,
    symbol_days: list[SymbolDay],
    cache_dir: str | Path | None = None,
    schema: FeatureSchema | None = None,
    progress: bool = True,
) -> CacheResult:
    """Feature files of ``symbol_days``, extracting the missing ones as parallel Ray tasks.

    Ray must be connected (``cluster.connect``); workers need the catalog path on their machine.
    ``schema`` defaults to each instrument's market schema; ``cache_dir`` to
    ``CATALOG/.feature_cache``.
    """
    import ray

    if not symbol_days:
        raise BadInputError("cached_features: symbol_days is empty", field="symbol_days")
    cache_root = Path(cache_dir) if cache_dir is not None else catalog.root / CACHE_DIRNAME
    paths: dict[SymbolDay, Path] = {}
    todo: dict[SymbolDay, tuple[Path, FeatureSchema]] = {}
    for sd in symbol_days:
        sd_schema = schema or schema_for(market_of(sd.instrument_id))
        path = cache_path(cache_root, sd, cache_key(catalog, sd, sd_schema))
        paths[sd] = path
        if not path.exists():
            todo[sd] = (path, sd_schema)
    if todo:
        task = ray.remote(num_cpus=1)(_extract_to)
        refs = {
            task.remote(
                str(catalog.root), sd.instrument_id, sd.day.isoformat(), s.to_dict(), str(p)
            ): sd
            for sd, (p, s) in todo.items()
        }
        pending = list(refs)
        with tqdm(total=len(pending), desc="features", unit="day", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # re-raises a worker's error with the symbol-day's traceback
                bar.update(len(done))
    return CacheResult(paths=paths, hits=len(symbol_days) - len(todo), misses=len(todo))


def load_tables(paths: dict[SymbolDay, Path]) -> tuple[FeatureSchema, dict[SymbolDay, pa.Table]]:
    """Read cached feature files; every file must carry the same schema."""
    tables: dict[SymbolDay, pa.Table] = {}
    schema: FeatureSchema | None = None
    for sd, path in paths.items():
        file_schema, table = read_features(path)
        if schema is not None and file_schema != schema:
            raise SchemaMismatchError(f"{path}: feature schema differs from the other symbol-days'")
        schema = file_schema
        tables[sd] = table
    assert schema is not None
    return schema, tables
