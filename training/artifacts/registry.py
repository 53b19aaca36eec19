"""The model registry: immutable bundle versions, movable aliases, lineage and an audit log.

The store root is a local directory (default ``$NHMM_REGISTRY`` or ``./model_store``) or
``s3://bucket/prefix`` through ``pyarrow.fs`` (endpoint from ``NHMM_S3_ENDPOINT`` /
``AWS_ENDPOINT_URL``, credentials from the standard AWS environment; the two stores live in
:mod:`training.artifacts.store`). Errors are :class:`RegistryError` subclasses that also carry
their kind (:mod:`training.artifacts.errors`). Layout::

    versions/<vNNNN-bundleid8>/   bundle files; manifest.json written last (no manifest = invisible)
    claims/vNNNN                  version-number claims (unique per number, never reused)
    staging/<uuid>/               a registration in progress, verified before publishing
    aliases/<alias>.json          {"version", "history"}: promote pushes, rollback pops
    events.jsonl                  audit log (S3: events/<time>-<uuid>.json, one object each)

>>> import numpy as np, tempfile
>>> from training.artifacts.bundle import ModelBundle
>>> b = ModelBundle(schema={"version": "FEATURES_V1"}, scaler={}, hmm={"a": np.eye(2)},
...                 policy_ubj=b"{}", policy_config={}, thresholds={}, histograms={},
...                 metadata={"created_at": "2024-01-01T00:00:00+00:00"})
>>> with tempfile.TemporaryDirectory() as d:
...     reg = Registry(d)
...     v = reg.register(b)
...     (v.startswith("v0001-"), reg.resolve("candidate") == v, reg.promote() == v)
(True, True, True)
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs

from training.artifacts.bundle import MANIFEST
from training.artifacts.bundle import METADATA_FILE
from training.artifacts.bundle import BundleIntegrityError
from training.artifacts.bundle import ModelBundle
from training.artifacts.bundle import bundle_files
from training.artifacts.bundle import bundle_from_files
from training.artifacts.bundle import code_version
from training.artifacts.bundle import file_order
from training.artifacts.bundle import verify_files
from training.artifacts.errors import BadAliasError
from training.artifacts.errors import LockTimeoutError
from training.artifacts.errors import NothingToRollBackError
from training.artifacts.errors import RegistryError
from training.artifacts.errors import UnknownModelError
from training.artifacts.errors import VersionExistsError
from training.artifacts.store import json_bytes
from training.artifacts.store import open_store

__all__ = [
    "DEFAULT_ROOT",
    "VERSION_RE",
    "BadAliasError",
    "LockTimeoutError",
    "NothingToRollBackError",
    "Registry",
    "RegistryError",
    "UnknownModelError",
    "VersionExistsError",
    "VersionInfo",
]

DEFAULT_ROOT = "./model_store"
VERSION_RE = re.compile(r"^v(\d{4,})-([0-9a-f]{8})$")
_NUMBER_REF_RE = re.compile(r"^v?(\d+)$")
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class VersionInfo:
    """One visible version as listed by :meth:`Registry.versions`."""

    version: str
    number: int
    bundle_id: str
    created_at: str | None
    parent: str | None
    sweep_id: str | None
    trial_id: str | None
    aliases: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    data_hash: str | None = None
    symbol_days: tuple[str, ...] = ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Registry:
    """Versioned model store with ``live``/``candidate`` aliases, promote/rollback and lineage.

    Parameters
    ----------
    root
        Local directory or ``s3://bucket/prefix``; default ``$NHMM_REGISTRY`` or ``./model_store``.
    filesystem
        A ``pyarrow.fs.FileSystem`` to use instead of the one derived from ``root``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        filesystem: pafs.FileSystem | None = None,
    ) -> None:
        root = os.fspath(root) if root is not None else None
        root = root or os.environ.get("NHMM_REGISTRY") or DEFAULT_ROOT
        self._store = open_store(root, filesystem)
        self.root: str = self._store.url

    def __repr__(self) -> str:
        return f"Registry({self.root!r})"

    # -- versions ---------------------------------------------------------------------------

    def register(
        self,
        bundle: ModelBundle,
        alias: str | None = "candidate",
        *,
        parent: str | None = None,
        sweep_id: str | None = None,
        trial_id: str | None = None,
    ) -> str:
        """Store ``bundle`` as a new immutable version, point ``alias`` at it, return its id.

        All or nothing: the files are staged and verified by loading them back, then published
        with the manifest last. ``parent`` (a ref, e.g. the live version a ``partial_fit``
        started from) and ``sweep_id``/``trial_id`` are recorded in the metadata.
        """
        if alias is not None:
            _check_alias(alias)
        updates: dict[str, Any] = {}
        if parent is not None:
            updates["parent"] = self.resolve(parent)
        if sweep_id is not None:
            updates["sweep_id"] = sweep_id
        if trial_id is not None:
            updates["trial_id"] = trial_id
        if "created_at" not in bundle.metadata:
            updates["created_at"] = _now()
        if "code_version" not in bundle.metadata:
            updates["code_version"] = code_version()
        if updates:
            bundle = bundle.with_metadata(**updates)
        files = bundle_files(bundle)
        bundle_id = verify_files(files).bundle_id

        store = self._store
        staging = f"staging/{uuid.uuid4().hex}"
        vdir: str | None = None
        try:
            for name in file_order(files):
                store.write(f"{staging}/{name}", files[name])
            staged = {n: store.read(f"{staging}/{n}") for n in store.list(staging)}
            bundle_from_files(staged)  # what we publish is exactly what loaded back
            version = self._claim_version(bundle_id)
            if store.list(f"versions/{version}"):
                raise VersionExistsError(
                    f"version {version} already exists; versions are immutable"
                )
            vdir = f"versions/{version}"  # ours from here on: remove it if anything fails
            for name in file_order(staged)[:-1]:
                store.write(f"{vdir}/{name}", staged[name])
            store.write(f"{vdir}/{MANIFEST}", staged[MANIFEST])  # last: the version now exists
        except BaseException:
            if vdir is not None:
                store.delete_file(f"{vdir}/{MANIFEST}")
                store.delete_tree(vdir)
            raise
        finally:
            store.delete_tree(staging)
        self._event(
            "register", version=version, bundle_id=bundle_id, parent=bundle.metadata.get("parent")
        )
        if alias is not None:
            self._move_alias(alias, version, action="alias")
        return version

    def _claim_version(self, bundle_id: str) -> str:
        store = self._store
        note = json_bytes(
            {
                "bundle_id": bundle_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "time": _now(),
            }
        )
        for _ in range(1000):
            used = [_number(n) for n in (*store.list("claims"), *store.list("versions"))]
            n = 1 + max((u for u in used if u is not None), default=0)
            if store.create_exclusive(f"claims/v{n:04d}", note):
                return f"v{n:04d}-{bundle_id[:8]}"
            time.sleep(random.random() * 0.02)
        raise VersionExistsError("could not claim a version number after 1000 attempts")

    def _visible(self, version: str) -> bool:
        return bool(VERSION_RE.match(version)) and self._store.is_file(
            f"versions/{version}/{MANIFEST}"
        )

    def load(self, ref: str, expected_schema_version: str | None = None) -> ModelBundle:
        """The verified bundle of a version or alias (``live``, ``candidate``)."""
        version = self.resolve(ref)
        vdir = f"versions/{version}"
        files = {n: self._store.read(f"{vdir}/{n}") for n in self._store.list(vdir)}
        manifest = verify_files(files)
        if manifest.bundle_id[:8] != VERSION_RE.match(version).group(2):  # type: ignore[union-attr]
            raise BundleIntegrityError(
                f"{vdir}/{MANIFEST}: bundle_id {manifest.bundle_id[:8]} does not match the version"
            )
        return bundle_from_files(files, expected_schema_version)

    def resolve(self, ref: str) -> str:
        """Version id of ``ref``: an alias, a version id, or a version number (``v7``, ``7``)."""
        if VERSION_RE.match(ref):
            if self._visible(ref):
                return ref
            raise UnknownModelError(f"unknown version {ref!r} in {self.root}")
        record = self._alias_record(ref) if _ALIAS_RE.match(ref) else None
        if record is not None:
            return str(record["version"])
        m = _NUMBER_REF_RE.match(ref)
        if m:
            for v in self._version_ids():
                if _number(v) == int(m.group(1)):
                    return v
        known = ", ".join(sorted(self.aliases())) or "none"
        raise UnknownModelError(f"unknown model ref {ref!r} in {self.root} (aliases: {known})")

    def _version_ids(self) -> list[str]:
        names = [n for n in self._store.list("versions") if self._visible(n)]
        return sorted(names, key=lambda v: _number(v) or 0)

    def versions(self) -> list[VersionInfo]:
        """Every visible version, oldest first."""
        by_version: dict[str, list[str]] = {}
        for alias, version in self.aliases().items():
            by_version.setdefault(version, []).append(alias)
        return [self._info(v, tuple(sorted(by_version.get(v, [])))) for v in self._version_ids()]

    def info(self, ref: str) -> VersionInfo:
        """:class:`VersionInfo` of one version or alias."""
        version = self.resolve(ref)
        aliases = tuple(sorted(a for a, v in self.aliases().items() if v == version))
        return self._info(version, aliases)

    def _info(self, version: str, aliases: tuple[str, ...]) -> VersionInfo:
        vdir = f"versions/{version}"
        meta = json.loads(self._store.read(f"{vdir}/{METADATA_FILE}"))
        manifest = json.loads(self._store.read(f"{vdir}/{MANIFEST}"))
        metrics = meta.get("metrics") or {}
        summary = (
            {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
            if isinstance(metrics, dict)
            else {}
        )
        days = meta.get("symbol_days") or ()
        return VersionInfo(
            version=version,
            number=_number(version) or 0,
            bundle_id=str(manifest.get("bundle_id", "")),
            created_at=meta.get("created_at"),
            parent=meta.get("parent"),
            sweep_id=meta.get("sweep_id"),
            trial_id=None if meta.get("trial_id") is None else str(meta.get("trial_id")),
            aliases=aliases,
            metrics=summary,
            code_version=meta.get("code_version"),
            data_hash=meta.get("data_hash"),
            symbol_days=tuple(str(d) for d in days) if isinstance(days, (list, tuple)) else (),
        )

    def lineage(self, ref: str) -> list[str]:
        """``[version, parent, grandparent, ...]`` as far as recorded parents exist here."""
        chain = [self.resolve(ref)]
        while True:
            parent = json.loads(self._store.read(f"versions/{chain[-1]}/{METADATA_FILE}")).get(
                "parent"
            )
            if not parent or parent in chain or not self._visible(str(parent)):
                return chain
            chain.append(str(parent))

    # -- aliases ----------------------------------------------------------------------------

    def _alias_record(self, alias: str) -> dict[str, Any] | None:
        # pyarrow reads S3 objects as HEAD (size) + ranged GET, so a read racing a replacement
        # can return a truncated record; alias records are the only objects that get replaced.
        for attempt in range(20):
            try:
                return json.loads(self._store.read(f"aliases/{alias}.json"))
            except FileNotFoundError:
                return None
            except json.JSONDecodeError:
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
        return None

    def aliases(self) -> dict[str, str]:
        """``alias -> version`` for every alias set."""
        out: dict[str, str] = {}
        for name in self._store.list("aliases"):
            if name.endswith(".json") and _ALIAS_RE.match(name[:-5]):
                record = self._alias_record(name[:-5])
                if record is not None:
                    out[name[:-5]] = str(record["version"])
        return out

    def alias_history(self, alias: str) -> list[str]:
        """Earlier targets of ``alias``, oldest first (what :meth:`rollback` returns to)."""
        record = self._alias_record(alias)
        return [] if record is None else [str(v) for v in record.get("history", [])]

    def promote(self, ref: str = "candidate", alias: str = "live") -> str:
        """Point ``alias`` at ``ref``'s version (verified first), remembering the old target."""
        _check_alias(alias)
        version = self.resolve(ref)
        self.load(version)  # never promote a bundle that fails its hashes
        self._move_alias(alias, version, action="promote", ref=ref)
        return version

    def rollback(self, alias: str = "live") -> str:
        """Point ``alias`` back at its previous target; return that version."""
        _check_alias(alias)
        with self._store.lock(f"alias-{alias}"):
            record = self._alias_record(alias)
            if record is None:
                raise NothingToRollBackError(f"alias {alias!r} is not set; nothing to roll back")
            history = [str(v) for v in record.get("history", [])]
            if not history:
                raise NothingToRollBackError(
                    f"alias {alias!r} has no earlier version to roll back to"
                )
            target = history.pop()
            if not self._visible(target):
                raise UnknownModelError(
                    f"alias {alias!r}: previous version {target} is not available"
                )
            self._write_alias(alias, target, history)
        self._event("rollback", alias=alias, version=target, previous=record["version"])
        return target

    def _move_alias(self, alias: str, version: str, *, action: str, ref: str | None = None) -> None:
        with self._store.lock(f"alias-{alias}"):
            record = self._alias_record(alias)
            previous = None if record is None else str(record["version"])
            if previous == version:
                return
            history = [] if record is None else [str(v) for v in record.get("history", [])]
            if previous is not None:
                history.append(previous)
            self._write_alias(alias, version, history)
        self._event(action, alias=alias, version=version, previous=previous, ref=ref)

    def _write_alias(self, alias: str, version: str, history: list[str]) -> None:
        record = {"alias": alias, "version": version, "history": history, "updated_at": _now()}
        self._store.write(f"aliases/{alias}.json", json_bytes(record))

    # -- audit and housekeeping -------------------------------------------------------------

    def _event(self, action: str, **fields: Any) -> None:
        event = {"time": _now(), "action": action, "host": socket.gethostname(), "pid": os.getpid()}
        event.update({k: v for k, v in fields.items() if v is not None})
        self._store.append_event(event)

    def events(self) -> list[dict[str, Any]]:
        """The audit log (register / alias / promote / rollback), oldest first."""
        return sorted(self._store.read_events(), key=lambda e: e.get("time", ""))

    def cleanup(self, max_age_s: float = 3600.0) -> list[str]:
        """Remove stale staging dirs and manifest-less version dirs older than ``max_age_s``."""
        removed: list[str] = []
        store = self._store
        for name in store.list("staging"):
            if store.age_s(f"staging/{name}") >= max_age_s:
                store.delete_tree(f"staging/{name}")
                removed.append(f"staging/{name}")
        for name in store.list("versions"):
            if not self._visible(name) and store.age_s(f"versions/{name}") >= max_age_s:
                store.delete_tree(f"versions/{name}")
                removed.append(f"versions/{name}")
        return removed


def _number(name: str) -> int | None:
    m = re.match(r"^v(\d+)", name)
    return int(m.group(1)) if m else None


def _check_alias(alias: str) -> None:
    if not _ALIAS_RE.match(alias) or _NUMBER_REF_RE.match(alias):
        raise BadAliasError(
            f"invalid alias {alias!r}: use lower-case letters, digits, '-' or '_', "
            "starting with a letter, and not shaped like a version number",
            field="alias",
        )
