"""Where the registry keeps its objects: a local directory or any ``pyarrow.fs`` filesystem (S3).

Both stores offer the few primitives the registry needs — whole-object read/write, an exclusive
create for version-number claims, listings, deletes, an append-only audit log and an alias
lock — with the same keys (``versions/<v>/<file>``, ``aliases/<a>.json``...).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     s = open_store(d, None)
...     s.write("a/b.json", b"{}")
...     (s.list("a"), s.create_exclusive("c/1", b""), s.create_exclusive("c/1", b""))
(['b.json'], True, False)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import Protocol
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from training.artifacts.errors import BadRootError
from training.artifacts.errors import LockTimeoutError
from training.io import atomic_write_bytes

__all__ = ["ArrowStore", "LocalStore", "Store", "json_bytes", "open_store", "s3_filesystem"]


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON with sorted keys and a trailing newline (registry records)."""
    return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()


class Store(Protocol):
    """The primitives the registry is built on; keys are ``/``-separated paths under the root."""

    url: str

    def read(self, key: str) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def create_exclusive(self, key: str, data: bytes) -> bool: ...
    def is_file(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_tree(self, prefix: str) -> None: ...
    def delete_file(self, key: str) -> None: ...
    def age_s(self, prefix: str) -> float: ...
    def append_event(self, event: dict[str, Any]) -> None: ...
    def read_events(self) -> list[dict[str, Any]]: ...
    def lock(self, name: str) -> contextlib.AbstractContextManager[None]: ...


class LocalStore:
    """A directory: atomic writes (:mod:`training.io`), claims and locks by ``O_EXCL``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _p(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        return self._p(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self._p(key), data)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._p(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True

    def is_file(self, key: str) -> bool:
        return self._p(key).is_file()

    def list(self, prefix: str) -> list[str]:
        path = self._p(prefix)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def delete_tree(self, prefix: str) -> None:
        path = self._p(prefix)
        if not path.exists():
            return
        for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir() if sub.is_dir() else sub.unlink(missing_ok=True)
        path.rmdir()

    def delete_file(self, key: str) -> None:
        self._p(key).unlink(missing_ok=True)

    def age_s(self, prefix: str) -> float:
        path = self._p(prefix)
        stamps = [p.stat().st_mtime for p in [path, *path.rglob("*")] if p.exists()]
        return time.time() - max(stamps) if stamps else float("inf")

    def append_event(self, event: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(event, sort_keys=True) + "\n").encode()
        fd = os.open(self.root / "events.jsonl", os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from processes never interleave
        finally:
            os.close(fd)

    def read_events(self) -> list[dict[str, Any]]:
        path = self.root / "events.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @contextlib.contextmanager
    def lock(self, name: str, timeout_s: float = 30.0, stale_s: float = 120.0) -> Iterator[None]:
        path = self._p(f"locks/{name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
                os.close(fd)
                break
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - path.stat().st_mtime > stale_s:
                        path.unlink()  # holder died; the lock is older than any real update
                        continue
                if time.monotonic() > deadline:
                    raise LockTimeoutError(
                        f"{path}: lock held for more than {timeout_s} s"
                    ) from None
                time.sleep(0.005 + random.random() * 0.02)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


class ArrowStore:
    """Any ``pyarrow.fs`` filesystem (S3): single-object PUTs are atomic; no appends, no O_EXCL.

    A claim on S3 is ``<key>/<uuid>`` followed by a listing: S3 lists strongly consistently,
    so at most one claimant sees only its own object, and only that one wins. Contenders that
    see each other all lose and move on to the next number (the number is left unused).
    """

    def __init__(self, fs: pafs.FileSystem, base: str, url: str) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.url = url

    def _p(self, key: str) -> str:
        return f"{self.base}/{key}" if key else self.base

    def read(self, key: str) -> bytes:
        with self.fs.open_input_stream(self._p(key)) as fh:
            return fh.read()

    def write(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(self._p(key)) as fh:
            fh.write(data)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        mine = uuid.uuid4().hex
        self.write(f"{key}/{mine}", data)
        others = [n for n in self.list(key) if n != mine]
        return not others

    def is_file(self, key: str) -> bool:
        return self.fs.get_file_info(self._p(key)).type == pafs.FileType.File

    def list(self, prefix: str) -> list[str]:
        sel = pafs.FileSelector(self._p(prefix), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(sel))

    def delete_tree(self, prefix: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self._p(prefix))

    def delete_file(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self._p(key))

    def age_s(self, prefix: str) -> float:
        sel = pafs.FileSelector(self._p(prefix), allow_not_found=True, recursive=True)
        stamps = [i.mtime.timestamp() for i in self.fs.get_file_info(sel) if i.mtime is not None]
        return time.time() - max(stamps) if stamps else float("inf")

    def append_event(self, event: dict[str, Any]) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.write(f"events/{stamp}-{uuid.uuid4().hex[:8]}.json", json_bytes(event))

    def read_events(self) -> list[dict[str, Any]]:
        return [json.loads(self.read(f"events/{n}")) for n in self.list("events")]

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        # S3 has no cheap mutex; alias objects are replaced by one atomic PUT (last writer wins).
        yield


def s3_filesystem() -> pafs.S3FileSystem:
    """``S3FileSystem`` configured from ``NHMM_S3_ENDPOINT``/``AWS_ENDPOINT_URL`` and AWS env."""
    kwargs: dict[str, Any] = {}
    endpoint = (
        os.environ.get("NHMM_S3_ENDPOINT")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
        region = region or "us-east-1"
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_store(root: str, filesystem: pafs.FileSystem | None) -> Store:
    """The store for ``root``: ``s3://bucket/prefix``, a path on ``filesystem``, or a local
    directory (``file://`` or a plain path, made absolute)."""
    if root.startswith("s3://"):
        parts = urlsplit(root)
        if not parts.netloc:
            raise BadRootError(f"registry root {root!r}: missing bucket", field="registry")
        base = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        return ArrowStore(filesystem or s3_filesystem(), base, root.rstrip("/"))
    if filesystem is not None:
        return ArrowStore(filesystem, root, root)
    if root.startswith("file://"):
        root = urlsplit(root).path
    return LocalStore(Path(root).expanduser().resolve())
