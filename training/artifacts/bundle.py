"""The model bundle: everything needed to infer, versioned together and stored without pickle.

A bundle is a directory of plain files — JSON, deterministic ``.npz`` (arrays only, loaded with
``allow_pickle=False``) and XGBoost's own UBJ — plus ``manifest.json`` holding the SHA-256 and size
of every other file. Loading verifies every hash, so a tampered, missing or extra file is refused
by name, and a bundle whose feature schema has another version is refused before it can infer.

>>> import numpy as np, tempfile
>>> b = ModelBundle(
...     schema={"version": "FEATURES_V1", "names": ["x"]},
...     scaler={}, hmm={"means": np.zeros((2, 1))}, policy_ubj=b"{}", policy_config={},
...     thresholds={"min_conf": 0.6}, histograms={}, metadata={"created_at": "2024-01-01"})
>>> with tempfile.TemporaryDirectory() as d:
...     manifest = save_bundle(b, d)
...     load_bundle(d, expected_schema_version="FEATURES_V1") == b
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from training.features.engine import FeatureSchema
    from training.models.hmm import HMMParams
    from training.models.policy import PolicyHead

BUNDLE_FORMAT = "nhmm-bundle/1"
MANIFEST = "manifest.json"
SCHEMA_FILE = "schema.json"
SCALER_FILE = "scaler.npz"
HMM_FILE = "hmm.npz"
POLICY_FILE = "policy.ubj"
POLICY_JSON = "policy.json"
HISTOGRAMS_FILE = "histograms.npz"
METADATA_FILE = "metadata.json"
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
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_HIST_NAMES = "names"


class BundleError(Exception):
    """A bundle cannot be written or read."""


class BundleIntegrityError(BundleError):
    """A bundle file is missing, unexpected, or does not match its manifest entry."""


class SchemaVersionError(BundleError):
    """The bundle's feature schema version differs from the one the caller runs."""


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


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """Feature schema, scaler state, HMM, policy head, thresholds, drift histograms, metadata.

    Arrays and bytes are kept raw so this module needs only numpy; the accessors build the live
    objects (imported lazily from ``training.models.hmm``/``policy``/``features``). Equality compares
    arrays by dtype, shape and values.
    """

    schema: dict[str, Any]
    scaler: dict[str, np.ndarray]
    hmm: dict[str, np.ndarray]
    policy_ubj: bytes
    policy_config: dict[str, Any]
    thresholds: dict[str, float]
    histograms: dict[str, dict[str, np.ndarray]]
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_parts(
        cls,
        *,
        schema: FeatureSchema,
        hmm: HMMParams,
        policy: PolicyHead,
        policy_config: Any,
        thresholds: Mapping[str, float],
        histograms: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        scaler: Mapping[str, np.ndarray] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ModelBundle:
        """Build a bundle from the live objects (``to_dict``/``to_arrays``/``to_bytes``)."""
        config = (
            dataclasses.asdict(policy_config)
            if dataclasses.is_dataclass(policy_config)
            else dict(policy_config)
        )
        return cls(
            schema=schema.to_dict(),
            scaler=dict(scaler or {}),
            hmm=dict(hmm.to_arrays()),
            policy_ubj=bytes(policy.to_bytes()),
            policy_config=config,
            thresholds={k: float(v) for k, v in thresholds.items()},
            histograms={k: dict(v) for k, v in (histograms or {}).items()},
            metadata=dict(metadata or {}),
        )

    @property
    def schema_version(self) -> str | None:
        """The feature schema's version string (e.g. ``"FEATURES_V1"``)."""
        v = self.schema.get("version")
        return None if v is None else str(v)

    def hmm_params(self) -> HMMParams:
        from training.models.hmm import HMMParams

        return HMMParams.from_arrays(dict(self.hmm))

    def policy_head(self) -> PolicyHead:
        from training.models.policy import PolicyConfig, PolicyHead

        return PolicyHead.from_bytes(self.policy_ubj, PolicyConfig(**self.policy_config))

    def feature_schema(self) -> FeatureSchema:
        from training.features.engine import FeatureSchema

        return FeatureSchema.from_dict(self.schema)

    def with_metadata(self, **updates: Any) -> ModelBundle:
        """A copy whose metadata has ``updates`` merged in (the bundle itself is immutable)."""
        return dataclasses.replace(self, metadata={**self.metadata, **updates})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelBundle):
            return NotImplemented
        return all(
            _deep_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
        )

    __hash__ = None  # type: ignore[assignment]


def _deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        nan_ok = a.dtype.kind in "fc"
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=nan_ok)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# ---------------------------------------------------------------------------------------------
# Histograms of training features (the reference distribution for KL drift)


def feature_histograms(
    X: np.ndarray, names: Sequence[str], bins: int = 32
) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature ``{"edges", "counts", "probs"}`` of training features ``X`` (rows x features).

    Edges are equal-width between the 0.1 % and 99.9 % quantiles; values outside are counted in
    the end bins, so ``probs`` sums to 1 and live values must be clipped the same way
    (:func:`histogram_counts`). Non-finite values are refused: drop warm-up rows first.

    >>> h = feature_histograms(np.arange(10.0)[:, None], ["x"], bins=2)
    >>> h["x"]["counts"].tolist(), float(h["x"]["probs"].sum())
    ([5, 5], 1.0)
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"X has shape {X.shape}; expected (rows, {len(names)}) for names")
    if X.shape[0] == 0:
        raise ValueError("X has no rows")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if len(set(names)) != len(names):
        raise ValueError("feature names are not unique")
    out: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(names):
        col = X[:, j]
        bad = int(np.count_nonzero(~np.isfinite(col)))
        if bad:
            raise ValueError(f"feature {name!r}: {bad} non-finite values (drop warm-up rows)")
        lo, hi = np.quantile(col, [0.001, 0.999])
        if not hi > lo:
            lo, hi = float(np.min(col)), float(np.max(col))
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        counts = histogram_counts(edges, col)
        out[str(name)] = {"edges": edges, "counts": counts, "probs": counts / counts.sum()}
    return out


def histogram_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of ``edges``, clipping outliers into the end bins.

    >>> histogram_counts(np.array([0.0, 1.0, 2.0]), np.array([-5.0, 0.5, 1.5, 9.0])).tolist()
    [2, 2]
    """
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right") - 1
    idx = np.clip(idx, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Encoding: bundle <-> {file name: bytes}


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
        raise BundleError(f"{file}: cannot encode as JSON: {exc}") from exc
    return (text + "\n").encode()


def _decode_json(data: bytes, file: str) -> Any:
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
                raise BundleError(f"{file}: invalid array name {key!r}")
            arr = np.asarray(arrays[key])
            if (
                not arr.flags.c_contiguous
            ):  # one byte layout per content (ascontiguousarray: 0-d -> 1-d)
                arr = arr.copy(order="C")
            if arr.dtype.hasobject:
                raise BundleError(f"{file}: array {key!r} has object dtype (would need pickle)")
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


def _encode_histograms(hist: Mapping[str, Mapping[str, Any]]) -> bytes:
    names = list(hist)
    arrays: dict[str, Any] = {_HIST_NAMES: np.array(names, dtype=np.str_)}
    for i, name in enumerate(names):
        for key, value in hist[name].items():
            if not isinstance(key, str) or not key.isidentifier():
                raise BundleError(f"{HISTOGRAMS_FILE}: feature {name!r}: bad field name {key!r}")
            arrays[f"f{i:04d}.{key}"] = np.asarray(value)
    return encode_npz(arrays, HISTOGRAMS_FILE)


def _decode_histograms(data: bytes) -> dict[str, dict[str, np.ndarray]]:
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


def _check_scalars(d: Mapping[str, Any], file: str, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise BundleError(f"{file}: {what} {k!r} is {type(v).__name__}, expected a number")
        if not math.isfinite(float(v)):
            raise BundleError(f"{file}: {what} {k!r} is not finite ({v})")
        out[str(k)] = float(v)
    return out


def bundle_files(bundle: ModelBundle) -> dict[str, bytes]:
    """Every file of ``bundle`` as bytes, ``manifest.json`` included (deterministic)."""
    if not isinstance(bundle.policy_ubj, (bytes, bytearray)):
        raise BundleError(f"{POLICY_FILE}: policy_ubj must be bytes")
    policy = {
        "config": dict(bundle.policy_config),
        "thresholds": _check_scalars(bundle.thresholds, POLICY_JSON, "threshold"),
    }
    files = {
        SCHEMA_FILE: encode_json(bundle.schema, SCHEMA_FILE),
        SCALER_FILE: encode_npz(bundle.scaler, SCALER_FILE),
        HMM_FILE: encode_npz(bundle.hmm, HMM_FILE),
        POLICY_FILE: bytes(bundle.policy_ubj),
        POLICY_JSON: encode_json(policy, POLICY_JSON),
        HISTOGRAMS_FILE: _encode_histograms(bundle.histograms),
        METADATA_FILE: encode_json(bundle.metadata, METADATA_FILE),
    }
    files[MANIFEST] = encode_json(Manifest.for_files(files).to_dict(), MANIFEST)
    return files


def verify_files(files: Mapping[str, bytes]) -> Manifest:
    """Check ``files`` (manifest included) against the manifest; return it or raise naming a file."""
    if MANIFEST not in files:
        raise BundleIntegrityError(f"{MANIFEST}: missing")
    manifest = Manifest.from_dict(_decode_json(files[MANIFEST], MANIFEST))
    if manifest.format != BUNDLE_FORMAT:
        raise BundleIntegrityError(
            f"{MANIFEST}: format {manifest.format!r} is not {BUNDLE_FORMAT!r}"
        )
    for name in BUNDLE_FILES:
        if name not in manifest.files:
            raise BundleIntegrityError(f"{name}: not listed in {MANIFEST}")
    for name in sorted(manifest.files):
        if name not in BUNDLE_FILES:
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


def bundle_from_files(
    files: Mapping[str, bytes], expected_schema_version: str | None = None
) -> ModelBundle:
    """Verify ``files`` against their manifest and decode them into a :class:`ModelBundle`."""
    verify_files(files)
    schema = _decode_json(files[SCHEMA_FILE], SCHEMA_FILE)
    if not isinstance(schema, dict):
        raise BundleIntegrityError(f"{SCHEMA_FILE}: expected a JSON object")
    if expected_schema_version is not None and schema.get("version") != expected_schema_version:
        raise SchemaVersionError(
            f"{SCHEMA_FILE}: bundle feature schema version {schema.get('version')!r} "
            f"!= expected {expected_schema_version!r}"
        )
    policy = _decode_json(files[POLICY_JSON], POLICY_JSON)
    if not isinstance(policy, dict) or not {"config", "thresholds"} <= policy.keys():
        raise BundleIntegrityError(f"{POLICY_JSON}: expected keys 'config' and 'thresholds'")
    metadata = _decode_json(files[METADATA_FILE], METADATA_FILE)
    if not isinstance(metadata, dict):
        raise BundleIntegrityError(f"{METADATA_FILE}: expected a JSON object")
    return ModelBundle(
        schema=schema,
        scaler=decode_npz(files[SCALER_FILE], SCALER_FILE),
        hmm=decode_npz(files[HMM_FILE], HMM_FILE),
        policy_ubj=bytes(files[POLICY_FILE]),
        policy_config=dict(policy["config"]),
        thresholds={str(k): float(v) for k, v in policy["thresholds"].items()},
        histograms=_decode_histograms(files[HISTOGRAMS_FILE]),
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------------
# Local directories


def save_bundle(bundle: ModelBundle, directory: str | os.PathLike[str]) -> Manifest:
    """Write ``bundle`` into ``directory`` (new or empty), manifest last; return the manifest."""
    path = Path(directory)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BundleError(f"{path}: exists and is not an empty directory")
    files = bundle_files(bundle)  # encode everything before touching the disk
    path.mkdir(parents=True, exist_ok=True)
    for name in (*BUNDLE_FILES, MANIFEST):
        with open(path / name, "wb") as fh:
            fh.write(files[name])
            fh.flush()
            os.fsync(fh.fileno())
    return Manifest.from_dict(json.loads(files[MANIFEST]))


def read_bundle_files(directory: str | os.PathLike[str]) -> dict[str, bytes]:
    """All entries of a bundle directory as bytes (a subdirectory is an integrity error)."""
    path = Path(directory)
    if not path.is_dir():
        raise BundleIntegrityError(f"{path}: not a bundle directory")
    files: dict[str, bytes] = {}
    for entry in sorted(path.iterdir()):
        if not entry.is_file():
            raise BundleIntegrityError(f"{entry.name}: unexpected entry in {path}")
        files[entry.name] = entry.read_bytes()
    return files


def load_bundle(
    directory: str | os.PathLike[str], expected_schema_version: str | None = None
) -> ModelBundle:
    """Read and verify a bundle directory; refuse tampering and other schema versions."""
    return bundle_from_files(read_bundle_files(directory), expected_schema_version)


def code_version() -> str:
    """``git describe`` of the source tree when available, else the installed package version."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nautilus-hmm")
    except PackageNotFoundError:
        return "unknown"
