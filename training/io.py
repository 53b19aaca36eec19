"""Atomic local file writes: the one temp-file-then-rename.

A reader never sees a half-written file: the bytes go to a hidden temp file in the same
directory (unique per writer, so concurrent writers never share one), are flushed to disk, then
renamed over the target. A failure leaves the old file untouched and no temp file behind.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "a.json"
>>> atomic_write_json(p, {"b": 1, "a": [1.5]})
PosixPath('...a.json')
>>> read_json(p)
{'a': [1.5], 'b': 1}
>>> sorted(q.name for q in p.parent.iterdir())
['a.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
]


def temp_name(path: Path) -> Path:
    """The hidden per-writer temp file beside ``path``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write ``path``'s new content to; renamed into place on success.

    For writers that need a path (Parquet, matplotlib); the parent directory is created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
    fsync: bool = True,
) -> Path:
    """Write ``obj`` as JSON (sorted keys, trailing newline) atomically; returns the path."""
    text = json.dumps(obj, sort_keys=True, indent=indent, default=default) + "\n"
    return atomic_write_text(path, text, fsync=fsync)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document at ``path`` (``FileNotFoundError`` if absent)."""
    return json.loads(Path(path).read_text())
