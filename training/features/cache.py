"""Parallel, cached feature extraction: one Ray task per symbol, Parquet per symbol-day.

FEATURES_V1 (from the book and trades) or FEATURES_BARS_V1 (from 1m klines): the schema's type
picks the engine, the data files the key hashes (the partition's files, or the kline files
holding the day's bars) and the reader.

The days of a symbol go through ONE continuous engine (:func:`extract_many`), as the backtest
and the live node compute features: the standardiser and the warm-up carry over from one day to
the next instead of restarting every day. So a day's table depends on the days before it, and
its cache key chains them: the SHA-256 of the previous day's key, the symbol-day's partition
files (and ground-truth labels and a perpetual's funding updates, when present) or kline files,
the feature schema (version and every window) and the table layout. A second sweep on the same data reads Parquet instead of replaying the book;
symbols are independent tasks.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.errors import BadInputError
from training.errors import SchemaMismatchError
from training.features.bars.schema import FEATURES_BARS_VERSION
from training.features.bars.schema import BarFeatureSchema
from training.features.bars.schema import bar_schema
from training.features.bars.schema import schema_from_dict
from training.features.offline import SCHEMA_KEY
from training.features.offline import extract_many
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


#: Version of the cached table layout (v3: continuous engine, trade extremes after latency).
TABLE_LAYOUT = "v3-continuous"


def cache_key(
    catalog: MarketCatalog,
    sd: SymbolDay,
    schema: FeatureSchema | BarFeatureSchema,
    previous: str = "",
) -> str:
    """SHA-256 over ``previous`` (the key of the day before in the same engine run), the
    symbol-day's data files (by kind, a perpetual's funding file included; for a
    :class:`BarFeatureSchema` the kline files holding the day), the schema's JSON and
    :data:`TABLE_LAYOUT`."""
    h = hashlib.sha256()
    h.update(f"{TABLE_LAYOUT}\n{previous}\n".encode())
    h.update(f"{sd.instrument_id}/{sd.day.isoformat()}\n".encode())
    if isinstance(schema, BarFeatureSchema):
        from training.features.bars.offline import bar_files

        files = {f"bars/{path.name}": path for path in bar_files(catalog, sd)}
    else:
        files = dict(catalog.files(sd))
        labels = catalog.labels_path(sd)
        if labels.exists():
            files["labels"] = labels
        funding = catalog.funding_file(sd)
        if schema.market == "perp" and funding.exists():  # what ``funding_rate_bp`` reads
            files["funding"] = funding
    for kind in sorted(files):
        h.update(f"{kind}:{_file_sha256(Path(files[kind]))}\n".encode())
    h.update(json.dumps(schema.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def cache_path(cache_dir: str | Path, sd: SymbolDay, key: str) -> Path:
    """``CACHE/<instrument_id>/<YYYY-MM-DD>-<key[:16]>.parquet``."""
    return Path(cache_dir) / sd.instrument_id / f"{sd.day.isoformat()}-{key[:16]}.parquet"


def _extract_to(
    catalog_root: str, symbol: str, days: list[str], schema: dict, paths: list[str]
) -> list[str]:
    """Worker body: one symbol's days through one engine, each day's table written atomically."""
    catalog = MarketCatalog(catalog_root)
    dates = [datetime.date.fromisoformat(d) for d in days]
    s = schema_from_dict(schema)
    if isinstance(s, BarFeatureSchema):
        from training.features.bars.offline import extract_bar_features

        tables = extract_bar_features(catalog, symbol, dates, s, progress=False)
    else:
        tables = extract_many(catalog, symbol, dates, s, progress=False)
    return [str(write_table(t, Path(p))) for t, p in zip(tables.values(), paths, strict=True)]


def cached_features(
    catalog: MarketCatalog,
    symbol_days: list[SymbolDay],
    cache_dir: str | Path | None = None,
    schema: FeatureSchema | BarFeatureSchema | None = None,
    progress: bool = True,
    bars: bool = False,
) -> CacheResult:
    """Feature files of ``symbol_days`` (each symbol's days through one continuous engine),
    extracting the symbols with a missing day as parallel Ray tasks.

    Ray must be connected (``cluster.connect``); workers need the catalog path on their machine.
    ``schema`` defaults to each instrument's market schema (FEATURES_BARS_V1 of its 1m klines
    with ``bars``, else FEATURES_V1); ``cache_dir`` to ``CATALOG/.feature_cache``.
    """
    import ray

    if not symbol_days:
        raise BadInputError("cached_features: symbol_days is empty", field="symbol_days")
    cache_root = Path(cache_dir) if cache_dir is not None else catalog.root / CACHE_DIRNAME
    paths: dict[SymbolDay, Path] = {}
    todo: list[tuple[str, list[SymbolDay], FeatureSchema | BarFeatureSchema]] = []
    by_symbol: dict[str, list[SymbolDay]] = {}
    for sd in sorted(symbol_days, key=lambda sd: (sd.instrument_id, sd.day)):
        by_symbol.setdefault(sd.instrument_id, []).append(sd)
    for instrument_id, sds in by_symbol.items():
        market = market_of(instrument_id)
        sd_schema = schema or (bar_schema(market) if bars else schema_for(market))
        key = ""
        for sd in sds:
            key = cache_key(catalog, sd, sd_schema, key)
            paths[sd] = cache_path(cache_root, sd, key)
        if not all(paths[sd].exists() for sd in sds):
            todo.append((instrument_id, sds, sd_schema))
    misses = sum(len(sds) for _, sds, _ in todo)
    if todo:
        task = ray.remote(num_cpus=1)(_extract_to)
        pending = [
            task.remote(str(catalog.root), inst, [sd.day.isoformat() for sd in sds],
                        s.to_dict(), [str(paths[sd]) for sd in sds])
            for inst, sds, s in todo
        ]  # fmt: skip
        with tqdm(total=misses, desc="features", unit="day", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(ray.get(done)[0]))  # re-raises a worker's error with its traceback
    paths = {sd: paths[sd] for sd in symbol_days}
    return CacheResult(paths=paths, hits=len(symbol_days) - misses, misses=misses)


def _read(path: Path) -> tuple[FeatureSchema | BarFeatureSchema, pa.Table]:
    """A cached table and its schema, by the version in its metadata."""
    meta = pq.read_schema(path).metadata or {}
    if SCHEMA_KEY in meta and json.loads(meta[SCHEMA_KEY]).get("version") == FEATURES_BARS_VERSION:
        from training.features.bars.offline import read_bar_features

        return read_bar_features(path)
    return read_features(path)


def load_tables(
    paths: dict[SymbolDay, Path],
) -> tuple[FeatureSchema | BarFeatureSchema, dict[SymbolDay, pa.Table]]:
    """Read cached feature files (FEATURES_V1 or FEATURES_BARS_V1, by their metadata); every
    file must carry the same schema."""
    tables: dict[SymbolDay, pa.Table] = {}
    schema: FeatureSchema | BarFeatureSchema | None = None
    for sd, path in paths.items():
        file_schema, table = _read(path)
        if schema is not None and file_schema != schema:
            raise SchemaMismatchError(f"{path}: feature schema differs from the other symbol-days'")
        schema = file_schema
        tables[sd] = table
    assert schema is not None
    return schema, tables
