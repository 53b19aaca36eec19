"""``nhmm rollup``: one UTC day of runs as Hive-partitioned Parquet, locally or on S3.

Layout under the destination (a path or ``s3://bucket/prefix``, through ``pyarrow.fs``)::

    <table>/symbol=<SYMBOL>/date=<YYYY-MM-DD>/part-0.parquet   table: timeline, decisions,
                                                               orders, fills, guardrails
    _manifests/symbol=<SYMBOL>/date=<YYYY-MM-DD>.json          written last: rows, bytes, sha256
    _staging/...                                               work area (readers skip "_" paths)

Read it back with ``pyarrow.dataset.dataset(f"{dest}/timeline", partitioning="hive")`` or
DuckDB's ``read_parquet('<dest>/timeline/*/*/*.parquet', hive_partitioning = true)``.

**Atomic replacement.** Every table's day partition is exactly one object, replaced in one
step: the new file is written and verified under ``_staging/``, then moved onto
``part-0.parquet`` — a ``rename(2)`` locally, a server-side copy on S3 (a single-object
``CopyObject``, which S3 makes visible whole or not at all; up to 5 GB, far above a day). A reader therefore sees the old file
or the new one, never a partial file, whatever happens mid-write; a crash only leaves
``_staging/`` debris, which the next rollup of that day removes. The five tables of a day cannot
change in one step on S3 (no multi-object transactions): the day's manifest is deleted before the
first swap and written after the last, so a day without a manifest is being (re)written or its
rollup died — rerun it; a reader that needs the five tables consistent reads days with a
manifest (and may check each file's sha256 against it). One rollup per day at a time.
Re-running a day with the same runs writes byte-identical files (idempotent).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from node.run_dir import TIMELINE
from ops._rollup_tables import TABLES
from ops._rollup_tables import day_tables
from ops._run_events import load_events
from training.errors import BadInputError
from training.errors import NotFoundError

__all__ = [
    "MANIFESTS",
    "PART",
    "STAGING",
    "TABLES",
    "RollupConfig",
    "destination",
    "find_runs",
    "partition_path",
    "rollup",
]

PART = "part-0.parquet"
STAGING = "_staging"
MANIFESTS = "_manifests"


@dataclass(frozen=True)
class RollupConfig:
    """``row_group_rows``: rows per Parquet row group (one progress step each)."""

    row_group_rows: int = 65_536
    compression: str = "zstd"

    def __post_init__(self) -> None:
        if self.row_group_rows < 1:
            raise BadInputError("row_group_rows: must be >= 1", field="row_group_rows")


def destination(to: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, base path)`` of ``s3://bucket/prefix`` (endpoint and credentials from the
    environment, :func:`training.artifacts.store.s3_filesystem`) or a local path."""
    if to.startswith("s3://"):
        from training.artifacts.store import s3_filesystem

        parts = urlsplit(to)
        if not parts.netloc:
            raise BadInputError(f"--to {to!r}: missing bucket", field="to")
        return s3_filesystem(), f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    if "://" in to and not to.startswith("file://"):
        raise BadInputError(f"--to {to!r}: not s3://bucket/prefix or a path", field="to")
    return pafs.LocalFileSystem(), str(Path(urlsplit(to).path if "://" in to else to).resolve())


def partition_path(base: str, table: str, symbol: str, date: datetime.date) -> str:
    """The directory of one table's day partition.

    >>> partition_path("b/p", "fills", "BTCUSDT", datetime.date(2024, 1, 3))
    'b/p/fills/symbol=BTCUSDT/date=2024-01-03'
    """
    return f"{base}/{table}/symbol={symbol}/date={date.isoformat()}"


def _manifest_path(base: str, symbol: str, date: datetime.date) -> str:
    return f"{base}/{MANIFESTS}/symbol={symbol}/date={date.isoformat()}.json"


def find_runs(state_dir: str | Path) -> list[Path]:
    """Every RUN_DIR in ``state_dir``: itself, and its sub-directories down to two levels that
    hold a timeline (a node restarted during the day leaves several)."""
    root = Path(state_dir)
    if not root.is_dir():
        raise NotFoundError(f"--state-dir {root}: not a directory", field="state_dir")
    found = [p.parent for p in (root / TIMELINE, *root.glob(f"*/{TIMELINE}"),
                                *root.glob(f"*/*/{TIMELINE}")) if p.is_file()]  # fmt: skip
    if not found:
        raise NotFoundError(f"--state-dir {root}: no RUN_DIR ({TIMELINE}) in it", field="state_dir")
    return sorted(found)


class _Writer:
    """Writes, verifies and swaps one destination's objects; reports each step."""

    def __init__(self, fs: pafs.FileSystem, report: Callable[[str], None]) -> None:
        self.fs = fs
        self.local = isinstance(fs, pafs.LocalFileSystem)
        self.report = report

    def _parent(self, path: str) -> None:
        if self.local:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def write_table(self, path: str, table: pa.Table, cfg: RollupConfig, step: str) -> dict:
        """Write ``table`` to ``path`` row group by row group; read it back: rows, bytes, sha256."""
        self._parent(path)
        with self.fs.open_output_stream(path) as out:
            writer = pq.ParquetWriter(out, table.schema, compression=cfg.compression)
            for i, batch in enumerate(table.to_batches(max_chunksize=cfg.row_group_rows)):
                writer.write_table(pa.Table.from_batches([batch], table.schema))
                self.report(f"stage {step} {i}")
            writer.close()
        with self.fs.open_input_file(path) as f:
            data = f.read()
        rows = pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
        if rows != table.num_rows:
            raise OSError(f"{path}: wrote {table.num_rows} rows, read back {rows}")
        return {"rows": rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def write_json(self, path: str, obj: Any, staging: str) -> None:
        tmp = f"{staging}/{uuid.uuid4().hex}.json"
        self._parent(tmp)
        with self.fs.open_output_stream(tmp) as out:
            out.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
        self.swap(tmp, path)

    def swap(self, staged: str, final: str) -> None:
        """Move ``staged`` onto ``final`` in one step (rename locally, one copy on S3)."""
        self._parent(final)
        self.fs.move(staged, final)

    def delete(self, path: str) -> None:
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            self.fs.delete_file(path)
        elif info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)

    def clear_others(self, directory: str, keep: str) -> None:
        """Delete every file of a partition directory but ``keep`` (a layout it replaced)."""
        sel = pafs.FileSelector(directory, allow_not_found=True)
        for info in self.fs.get_file_info(sel):
            if info.path.rstrip("/") != keep and info.type == pafs.FileType.File:
                self.fs.delete_file(info.path)


def rollup(
    date: datetime.date,
    runs: Sequence[str | Path],
    to: str,
    config: RollupConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Roll ``date`` of ``runs`` up into ``to``; returns each symbol's manifest.

    ``progress`` is called with each step (``stage <table> <row group>``, ``swap <table>``,
    ``manifest``). A date no run has a sample on raises :class:`NotFoundError`.
    """
    cfg = config or RollupConfig()
    if not runs:
        raise BadInputError("no RUN_DIR given (--run or --state-dir)", field="run")
    loaded = [(Path(r).name, load_events(r)) for r in runs]
    ids = [name for name, _ in loaded]
    if len(set(ids)) != len(ids):  # runs from a state dir: name them by their relative path
        loaded = [(str(Path(r)), ev) for r, (_, ev) in zip(runs, loaded, strict=True)]
    tables = day_tables(loaded, date)
    if not tables:
        raise NotFoundError(f"--date {date}: no sample on that UTC day in {[str(r) for r in runs]}",
                            field="date")  # fmt: skip
    fs, base = destination(to)
    writer = _Writer(fs, progress or (lambda step: None))
    manifests = []
    for symbol, by_name in tables.items():
        day_staging = f"{base}/{STAGING}/symbol={symbol}/date={date.isoformat()}"
        writer.delete(day_staging)  # debris of a rollup of this day that died
        staging = f"{day_staging}/{uuid.uuid4().hex}"
        files = {name: writer.write_table(f"{staging}/{name}.parquet", by_name[name], cfg, name)
                 for name in TABLES}  # fmt: skip
        manifest_path = _manifest_path(base, symbol, date)
        writer.delete(manifest_path)  # the day is being rewritten
        for name in TABLES:
            final_dir = partition_path(base, name, symbol, date)
            writer.swap(f"{staging}/{name}.parquet", f"{final_dir}/{PART}")
            writer.clear_others(final_dir, f"{final_dir}/{PART}")
            writer.report(f"swap {name}")
            files[name]["path"] = f"{final_dir}/{PART}"
        manifest = {
            "symbol": symbol,
            "date": date.isoformat(),
            "runs": [str(r) for r in runs],
            "tables": files,
            "rollup_id": staging.rsplit("/", 1)[1],
            "written_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        writer.write_json(manifest_path, manifest, staging)
        writer.report("manifest")
        writer.delete(day_staging)
        manifests.append(manifest)
    return manifests
