"""The model bundle: everything needed to infer, versioned together and stored without pickle.

A bundle is a directory of plain files — JSON, deterministic ``.npz`` (arrays only, loaded with
``allow_pickle=False``) and XGBoost's own UBJ — plus ``manifest.json`` holding the SHA-256 and size
of every other file. ``online.npz`` (the online-EM memory: statistics and training reservoir) is
optional: written when the bundle has one, and bundles without it load as before. Loading
verifies every hash, so a tampered, missing or extra file is refused by name, and a bundle whose
feature schema has another version is refused before it can infer.
The byte format lives in :mod:`training.artifacts._codec` (its names are public here), the
drift histograms in :mod:`training.artifacts.histograms`. Imports only numpy.

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
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from training.artifacts._codec import BUNDLE_FILES
from training.artifacts._codec import BUNDLE_FORMAT
from training.artifacts._codec import HISTOGRAMS_FILE
from training.artifacts._codec import HMM_FILE
from training.artifacts._codec import MANIFEST
from training.artifacts._codec import METADATA_FILE
from training.artifacts._codec import ONLINE_FILE
from training.artifacts._codec import OPTIONAL_FILES
from training.artifacts._codec import POLICY_FILE
from training.artifacts._codec import POLICY_JSON
from training.artifacts._codec import SCALER_FILE
from training.artifacts._codec import SCHEMA_FILE
from training.artifacts._codec import FileEntry
from training.artifacts._codec import Manifest
from training.artifacts._codec import bundle_id_of
from training.artifacts._codec import decode_histograms
from training.artifacts._codec import decode_json
from training.artifacts._codec import decode_npz
from training.artifacts._codec import encode_histograms
from training.artifacts._codec import encode_json
from training.artifacts._codec import encode_npz
from training.artifacts._codec import file_order
from training.artifacts._codec import finite_numbers
from training.artifacts._codec import verify_files
from training.artifacts.errors import BundleEncodeError
from training.artifacts.errors import BundleError
from training.artifacts.errors import BundleExistsError
from training.artifacts.errors import BundleIntegrityError
from training.artifacts.errors import SchemaVersionError
from training.artifacts.histograms import feature_histograms
from training.artifacts.histograms import histogram_counts
from training.io import atomic_write_bytes

if TYPE_CHECKING:
    from training.features.bars.schema import BarFeatureSchema
    from training.features.engine import FeatureSchema
    from training.models.hmm import HMMParams
    from training.models.online import OnlineMemory
    from training.models.policy import PolicyHead

__all__ = [
    "BUNDLE_FILES",
    "BUNDLE_FORMAT",
    "HISTOGRAMS_FILE",
    "HMM_FILE",
    "MANIFEST",
    "METADATA_FILE",
    "ONLINE_FILE",
    "OPTIONAL_FILES",
    "POLICY_FILE",
    "POLICY_JSON",
    "SCALER_FILE",
    "SCHEMA_FILE",
    "BundleEncodeError",
    "BundleError",
    "BundleExistsError",
    "BundleIntegrityError",
    "FileEntry",
    "Manifest",
    "ModelBundle",
    "SchemaVersionError",
    "bundle_files",
    "bundle_from_files",
    "bundle_id_of",
    "code_version",
    "decode_npz",
    "encode_json",
    "encode_npz",
    "feature_histograms",
    "file_order",
    "histogram_counts",
    "load_bundle",
    "read_bundle_files",
    "save_bundle",
    "verify_files",
]


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """Feature schema, scaler state, HMM, policy head, thresholds, drift histograms, metadata,
    and the online-EM memory (``online``; empty: none, no ``online.npz``).

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
    online: dict[str, np.ndarray] = field(default_factory=dict)

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
        online: OnlineMemory | None = None,
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
            online={} if online is None else online.to_arrays(),
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
        from training.models.policy import PolicyConfig
        from training.models.policy import PolicyHead

        return PolicyHead.from_bytes(self.policy_ubj, PolicyConfig(**self.policy_config))

    def online_memory(self) -> OnlineMemory | None:
        """The online-EM memory (statistics, training reservoir), or ``None`` if the bundle
        has none (bundles from before it)."""
        if not self.online:
            return None
        from training.models.online import OnlineMemory

        return OnlineMemory.from_arrays(dict(self.online))

    def feature_schema(self) -> FeatureSchema | BarFeatureSchema:
        """The schema the model was trained on, by its version (FEATURES_V1 or
        FEATURES_BARS_V1): the engine a client feeds the model follows from it."""
        from training.features.bars.schema import schema_from_dict

        return schema_from_dict(self.schema)

    def with_metadata(self, **updates: Any) -> ModelBundle:
        """A copy whose metadata has ``updates`` merged in (the bundle itself is immutable)."""
        return dataclasses.replace(self, metadata={**self.metadata, **updates})

    def with_online(self, memory: OnlineMemory | None) -> ModelBundle:
        """A copy carrying ``memory`` as its online-EM memory (``None``: none)."""
        return dataclasses.replace(self, online={} if memory is None else memory.to_arrays())

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
# Bundle <-> {file name: bytes}


def bundle_files(bundle: ModelBundle) -> dict[str, bytes]:
    """Every file of ``bundle`` as bytes, ``manifest.json`` included (deterministic)."""
    if not isinstance(bundle.policy_ubj, (bytes, bytearray)):
        raise BundleEncodeError(f"{POLICY_FILE}: policy_ubj must be bytes")
    policy = {
        "config": dict(bundle.policy_config),
        "thresholds": finite_numbers(bundle.thresholds, POLICY_JSON, "threshold"),
    }
    files = {
        SCHEMA_FILE: encode_json(bundle.schema, SCHEMA_FILE),
        SCALER_FILE: encode_npz(bundle.scaler, SCALER_FILE),
        HMM_FILE: encode_npz(bundle.hmm, HMM_FILE),
        POLICY_FILE: bytes(bundle.policy_ubj),
        POLICY_JSON: encode_json(policy, POLICY_JSON),
        HISTOGRAMS_FILE: encode_histograms(bundle.histograms),
        METADATA_FILE: encode_json(bundle.metadata, METADATA_FILE),
    }
    if bundle.online:
        files[ONLINE_FILE] = encode_npz(bundle.online, ONLINE_FILE)
    files[MANIFEST] = encode_json(Manifest.for_files(files).to_dict(), MANIFEST)
    return files


def bundle_from_files(
    files: Mapping[str, bytes], expected_schema_version: str | None = None
) -> ModelBundle:
    """Verify ``files`` against their manifest and decode them into a :class:`ModelBundle`."""
    verify_files(files)
    schema = decode_json(files[SCHEMA_FILE], SCHEMA_FILE)
    if not isinstance(schema, dict):
        raise BundleIntegrityError(f"{SCHEMA_FILE}: expected a JSON object")
    if expected_schema_version is not None and schema.get("version") != expected_schema_version:
        raise SchemaVersionError(
            f"{SCHEMA_FILE}: bundle feature schema version {schema.get('version')!r} "
            f"!= expected {expected_schema_version!r}"
        )
    policy = decode_json(files[POLICY_JSON], POLICY_JSON)
    if not isinstance(policy, dict) or not {"config", "thresholds"} <= policy.keys():
        raise BundleIntegrityError(f"{POLICY_JSON}: expected keys 'config' and 'thresholds'")
    metadata = decode_json(files[METADATA_FILE], METADATA_FILE)
    if not isinstance(metadata, dict):
        raise BundleIntegrityError(f"{METADATA_FILE}: expected a JSON object")
    return ModelBundle(
        schema=schema,
        scaler=decode_npz(files[SCALER_FILE], SCALER_FILE),
        hmm=decode_npz(files[HMM_FILE], HMM_FILE),
        policy_ubj=bytes(files[POLICY_FILE]),
        policy_config=dict(policy["config"]),
        thresholds={str(k): float(v) for k, v in policy["thresholds"].items()},
        histograms=decode_histograms(files[HISTOGRAMS_FILE]),
        metadata=metadata,
        online=decode_npz(files[ONLINE_FILE], ONLINE_FILE) if ONLINE_FILE in files else {},
    )


# ---------------------------------------------------------------------------------------------
# Local directories


def save_bundle(bundle: ModelBundle, directory: str | os.PathLike[str]) -> Manifest:
    """Write ``bundle`` into ``directory`` (new or empty), manifest last; return the manifest."""
    path = Path(directory)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BundleExistsError(f"{path}: exists and is not an empty directory")
    files = bundle_files(bundle)  # encode everything before touching the disk
    path.mkdir(parents=True, exist_ok=True)
    for name in file_order(files):
        atomic_write_bytes(path / name, files[name])
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
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version("nautilus-hmm")
    except PackageNotFoundError:
        return "unknown"
