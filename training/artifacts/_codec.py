"""The bundle's on-disk format: canonical JSON, deterministic ``.npz`` and the SHA-256 manifest.

Same content, same bytes: JSON with sorted keys and no NaN/inf, ``.npz`` members sorted with
fixed zip timestamps, arrays loaded with ``allow_pickle=False``. ``manifest.json`` holds the
SHA-256 and size of every other file and a bundle id derived from them; :func:`verify_files`
refuses a missing, extra, truncated or tampered file by name. Public through
:mod:`training.artifacts.bundle`.

>>> data = encode_npz({"b": np.arange(3), "a": np.eye(2)}, "x.npz")
>>> sorted(decode_npz(data, "x.npz")), encode_npz({"a": np.eye(2), "b": np.arange(3)}, "x.npz") == data
(['a', 'b'], True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.artifacts.errors import BundleEncodeError
from training.artifacts.errors import BundleIntegrityError

BUNDLE_FORMAT = "nhmm-bundle/1"
MANIFEST = "manifest.json"
SCHEMA_FILE = "schema.json"
SCALER_FILE = "scaler.npz"
HMM_FILE = "hmm.npz"
POLICY_FILE = "policy.ubj"
POLICY_JSON = "policy.json"
HISTOGRAMS_FILE = "histograms.npz"
METADATA_FILE = "metadata.json"
ONLINE_FILE = "online.npz"
#: Every file a bundle holds besides the manifest, in the order they are written.
BUNDLE_FILES: tuple[str, ...] = (
    SCHEMA_FILE,
    SCALER_FILE,
    HMM_FILE,
    POLICY_FILE,
    POLICY_JSON,
    HISTOGRAMS_FILE,
    METADATA_FILE,
)
#: Files a bundle may hold (covered by the manifest like the others): ``online.npz``, the
#: online-EM memory (statistics and training reservoir). Bundles from before it load unchanged.
OPTIONAL_FILES: tuple[str, ...] = (ONLINE_FILE,)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_HIST_NAMES = "names"


@dataclass(frozen=True)
class FileEntry:
    """SHA-256 (hex) and size in bytes of one bundle file."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: format version, one entry per file, and the bundle id derived from them."""

    format: str
    bundle_id: str
    files: dict[str, FileEntry]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "bundle_id": self.bundle_id,
            "files": {n: dataclasses.asdict(e) for n, e in sorted(self.files.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        try:
            files = {
                str(n): FileEntry(sha256=str(e["sha256"]), size=int(e["size"]))
                for n, e in d["files"].items()
            }
            return cls(format=str(d["format"]), bundle_id=str(d["bundle_id"]), files=files)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleIntegrityError(f"{MANIFEST}: malformed ({exc!r})") from exc

    @classmethod
    def for_files(cls, files: Mapping[str, bytes]) -> Manifest:
        """The manifest describing ``files`` (name -> bytes; the manifest itself excluded)."""
        entries = {
            name: FileEntry(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
            for name, data in files.items()
        }
        return cls(format=BUNDLE_FORMAT, bundle_id=bundle_id_of(entries), files=entries)


def bundle_id_of(entries: Mapping[str, FileEntry]) -> str:
    """SHA-256 over the sorted ``name:sha256`` lines: same files, same id."""
    h = hashlib.sha256()
    for name in sorted(entries):
        h.update(f"{name}:{entries[name].sha256}\n".encode())
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def encode_json(obj: Any, file: str) -> bytes:
    """Canonical JSON (sorted keys, no NaN/inf) so identical content gives identical bytes."""
    try:
        text = json.dumps(
            obj,
            sort_keys=True,
            indent=2,
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise BundleEncodeError(f"{file}: cannot encode as JSON: {exc}") from exc
    return (text + "\n").encode()


def decode_json(data: bytes, file: str) -> Any:
    """The JSON document in ``data`` (an integrity error naming ``file`` if it is not JSON)."""
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleIntegrityError(f"{file}: not valid JSON ({exc})") from exc


def encode_npz(arrays: Mapping[str, Any], file: str) -> bytes:
    """A ``.npz`` with fixed zip timestamps and sorted members: same arrays, same bytes.

    Object arrays are refused — they would need pickle to load.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            if not isinstance(key, str) or not key or "/" in key or "\\" in key:
                raise BundleEncodeError(f"{file}: invalid array name {key!r}")
            arr = np.asarray(arrays[key])
            if not arr.flags.c_contiguous:  # one byte layout per content (not ascontiguousarray:
                arr = arr.copy(order="C")  # it turns 0-d into 1-d)
            if arr.dtype.hasobject:
                raise BundleEncodeError(
                    f"{file}: array {key!r} has object dtype (would need pickle)"
                )
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def decode_npz(data: bytes, file: str) -> dict[str, np.ndarray]:
    """Arrays of a ``.npz``, loaded with ``allow_pickle=False`` (object arrays are refused)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BundleIntegrityError(f"{file}: cannot load arrays without pickle ({exc})") from exc


def encode_histograms(hist: Mapping[str, Mapping[str, Any]]) -> bytes:
    """``histograms.npz``: the feature names in order, then ``f<i>.<field>`` per feature."""
    names = list(hist)
    arrays: dict[str, Any] = {_HIST_NAMES: np.array(names, dtype=np.str_)}
    for i, name in enumerate(names):
        for key, value in hist[name].items():
            if not isinstance(key, str) or not key.isidentifier():
                raise BundleEncodeError(
                    f"{HISTOGRAMS_FILE}: feature {name!r}: bad field name {key!r}",
                )
            arrays[f"f{i:04d}.{key}"] = np.asarray(value)
    return encode_npz(arrays, HISTOGRAMS_FILE)


def decode_histograms(data: bytes) -> dict[str, dict[str, np.ndarray]]:
    """The per-feature histograms of ``histograms.npz``, in their stored order."""
    arrays = decode_npz(data, HISTOGRAMS_FILE)
    names = [str(n) for n in arrays.pop(_HIST_NAMES, np.array([], dtype=np.str_)).tolist()]
    out: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for key, value in arrays.items():
        idx, _, fname = key.partition(".")
        try:
            out[names[int(idx[1:])]][fname] = value
        except (ValueError, IndexError) as exc:
            raise BundleIntegrityError(f"{HISTOGRAMS_FILE}: unexpected array {key!r}") from exc
    return out


def finite_numbers(d: Mapping[str, Any], file: str, what: str) -> dict[str, float]:
    """``d`` as ``{str: float}``, refusing booleans, non-numbers and non-finite values."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise BundleEncodeError(
                f"{file}: {what} {k!r} is {type(v).__name__}, expected a number"
            )
        if not math.isfinite(float(v)):
            raise BundleEncodeError(f"{file}: {what} {k!r} is not finite ({v})")
        out[str(k)] = float(v)
    return out


def file_order(files: Mapping[str, bytes]) -> tuple[str, ...]:
    """The names of ``files`` in write order: required, optional present, manifest last."""
    return (*BUNDLE_FILES, *(n for n in OPTIONAL_FILES if n in files), MANIFEST)


def verify_files(files: Mapping[str, bytes]) -> Manifest:
    """Check ``files`` (manifest included) against the manifest; return it or raise naming a file."""
    if MANIFEST not in files:
        raise BundleIntegrityError(f"{MANIFEST}: missing")
    manifest = Manifest.from_dict(decode_json(files[MANIFEST], MANIFEST))
    if manifest.format != BUNDLE_FORMAT:
        raise BundleIntegrityError(
            f"{MANIFEST}: format {manifest.format!r} is not {BUNDLE_FORMAT!r}"
        )
    for name in BUNDLE_FILES:
        if name not in manifest.files:
            raise BundleIntegrityError(f"{name}: not listed in {MANIFEST}")
    for name in sorted(manifest.files):
        if name not in BUNDLE_FILES and name not in OPTIONAL_FILES:
            raise BundleIntegrityError(f"{name}: listed in {MANIFEST} but not a bundle file")
    for name in sorted(files):
        if name != MANIFEST and name not in manifest.files:
            raise BundleIntegrityError(f"{name}: unexpected file (not in {MANIFEST})")
    for name, entry in sorted(manifest.files.items()):
        if name not in files:
            raise BundleIntegrityError(f"{name}: missing (listed in {MANIFEST})")
        data = files[name]
        if len(data) != entry.size:
            raise BundleIntegrityError(
                f"{name}: size {len(data)} != {entry.size} in {MANIFEST} (tampered or truncated)"
            )
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise BundleIntegrityError(f"{name}: SHA-256 does not match {MANIFEST} (tampered)")
    if bundle_id_of(manifest.files) != manifest.bundle_id:
        raise BundleIntegrityError(f"{MANIFEST}: bundle_id does not match the file hashes")
    return manifest
