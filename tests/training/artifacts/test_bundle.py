"""Model bundle: exact round trip, deterministic bytes, integrity and schema checks, no pickle."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from tests.bundle_setup import hmm_params
from tests.bundle_setup import make_bundle
from training.artifacts.bundle import BUNDLE_FILES
from training.artifacts.bundle import MANIFEST
from training.artifacts.bundle import BundleError
from training.artifacts.bundle import BundleIntegrityError
from training.artifacts.bundle import Manifest
from training.artifacts.bundle import ModelBundle
from training.artifacts.bundle import SchemaVersionError
from training.artifacts.bundle import bundle_files
from training.artifacts.bundle import decode_npz
from training.artifacts.bundle import encode_npz
from training.artifacts.bundle import feature_histograms
from training.artifacts.bundle import histogram_counts
from training.artifacts.bundle import load_bundle
from training.artifacts.bundle import save_bundle
from training.features import FeatureSchema
from training.models.policy import PolicyConfig
from training.models.policy import PolicyHead


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return make_bundle()


def rewrite_manifest(directory: Path) -> None:
    """Re-hash every file so only content checks (not the manifest) can catch a change."""
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.name != MANIFEST}
    (directory / MANIFEST).write_text(json.dumps(Manifest.for_files(files).to_dict()))


def test_round_trip_is_exact(bundle: ModelBundle, tmp_path: Path) -> None:
    save_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b", expected_schema_version="FEATURES_V1")
    assert loaded == bundle
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted((*BUNDLE_FILES, MANIFEST))
    for key, arr in bundle.hmm.items():
        assert loaded.hmm[key].dtype == arr.dtype and np.array_equal(loaded.hmm[key], arr)
    assert loaded.scaler["n"].dtype == np.int64 and int(loaded.scaler["n"]) == 500
    assert loaded.policy_ubj == bundle.policy_ubj
    assert loaded.thresholds == bundle.thresholds
    assert loaded.metadata["config"] == {"hmm": {"n_states": 3}, "seed": 0}
    h, h0 = loaded.histograms["spread_bp"], bundle.histograms["spread_bp"]
    assert np.array_equal(h["edges"], h0["edges"]) and h["counts"].dtype == np.int64
    assert list(loaded.histograms) == list(FeatureSchema().names)


def test_accessors_rebuild_live_objects(bundle: ModelBundle, tmp_path: Path) -> None:
    save_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert loaded.hmm_params().equals(hmm_params())
    assert loaded.feature_schema() == FeatureSchema()
    head = loaded.policy_head()
    assert head.config == PolicyConfig(n_estimators=3, max_depth=2, buy_threshold=0.5)
    original = xgb.Booster(model_file=bytearray(bundle.policy_ubj))
    X = np.random.default_rng(5).normal(size=(7, 4)).astype(np.float32)
    expected = original.inplace_predict(X)
    assert expected.shape == (7, 3)
    assert np.array_equal(head.predict_proba(X), expected.astype(np.float64))


def test_from_parts_matches_manual_construction(bundle: ModelBundle) -> None:
    config = PolicyConfig(n_estimators=3, max_depth=2, buy_threshold=0.5)
    built = ModelBundle.from_parts(
        schema=FeatureSchema(),
        hmm=hmm_params(),
        policy=PolicyHead.from_bytes(bundle.policy_ubj, config),
        policy_config=config,
        thresholds=bundle.thresholds,
        histograms=bundle.histograms,
        scaler=bundle.scaler,
        metadata=bundle.metadata,
    )
    assert built == bundle


def test_saving_twice_gives_identical_bytes(bundle: ModelBundle, tmp_path: Path) -> None:
    m1 = save_bundle(bundle, tmp_path / "a")
    m2 = save_bundle(make_bundle(), tmp_path / "b")  # rebuilt from scratch, same inputs
    assert m1 == m2
    assert (tmp_path / "a" / MANIFEST).read_bytes() == (tmp_path / "b" / MANIFEST).read_bytes()
    for name in BUNDLE_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    entries = json.loads((tmp_path / "a" / MANIFEST).read_text())["files"]
    for name in BUNDLE_FILES:
        data = (tmp_path / "a" / name).read_bytes()
        assert entries[name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    other = bundle.with_metadata(created_at="2024-05-02T00:00:00+00:00")
    assert bundle_files(other)[MANIFEST] != bundle_files(bundle)[MANIFEST]
    assert (
        m1.bundle_id
        == Manifest.for_files(
            {n: (tmp_path / "a" / n).read_bytes() for n in BUNDLE_FILES}
        ).bundle_id
    )


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_tampered_file_is_named(bundle: ModelBundle, tmp_path: Path, name: str) -> None:
    save_bundle(bundle, tmp_path)
    path = tmp_path / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=rf"^{name}: SHA-256 does not match"):
        load_bundle(tmp_path)


def test_truncated_file_reports_size(bundle: ModelBundle, tmp_path: Path) -> None:
    save_bundle(bundle, tmp_path)
    path = tmp_path / "hmm.npz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleIntegrityError, match=r"^hmm\.npz: size \d+ != \d+"):
        load_bundle(tmp_path)


def test_tampered_manifest_id_is_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    save_bundle(bundle, tmp_path)
    m = json.loads((tmp_path / MANIFEST).read_text())
    m["bundle_id"] = "0" * 64
    (tmp_path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleIntegrityError, match=r"^manifest\.json: bundle_id"):
        load_bundle(tmp_path)


def test_missing_and_extra_files_are_named(bundle: ModelBundle, tmp_path: Path) -> None:
    save_bundle(bundle, tmp_path / "x")
    (tmp_path / "x" / "notes.txt").write_text("hello")
    with pytest.raises(BundleIntegrityError, match=r"^notes\.txt: unexpected file"):
        load_bundle(tmp_path / "x")

    save_bundle(bundle, tmp_path / "y")
    (tmp_path / "y" / "policy.ubj").unlink()
    with pytest.raises(BundleIntegrityError, match=r"^policy\.ubj: missing"):
        load_bundle(tmp_path / "y")

    save_bundle(bundle, tmp_path / "z")
    (tmp_path / "z" / MANIFEST).unlink()
    with pytest.raises(BundleIntegrityError, match=r"^manifest\.json: missing"):
        load_bundle(tmp_path / "z")

    save_bundle(bundle, tmp_path / "w")
    (tmp_path / "w" / "sub").mkdir()
    with pytest.raises(BundleIntegrityError, match=r"^sub: unexpected entry"):
        load_bundle(tmp_path / "w")


def test_schema_version_mismatch_is_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    save_bundle(bundle, tmp_path)
    with pytest.raises(SchemaVersionError, match="'FEATURES_V1' != expected 'FEATURES_V2'"):
        load_bundle(tmp_path, expected_schema_version="FEATURES_V2")
    assert load_bundle(tmp_path, expected_schema_version=None).schema_version == "FEATURES_V1"


def test_object_arrays_are_never_unpickled(bundle: ModelBundle, tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, means=np.array([{"evil": 1}, None], dtype=object))  # a pickle inside
    with pytest.raises(BundleIntegrityError, match=r"hmm\.npz: cannot load arrays without pickle"):
        decode_npz(buf.getvalue(), "hmm.npz")
    # Even with a manifest that vouches for it, the object array is refused on load.
    save_bundle(bundle, tmp_path)
    (tmp_path / "hmm.npz").write_bytes(buf.getvalue())
    rewrite_manifest(tmp_path)
    with pytest.raises(BundleIntegrityError, match=r"^hmm\.npz: cannot load arrays without pickle"):
        load_bundle(tmp_path)
    bad = ModelBundle(**{**bundle.__dict__, "hmm": {"means": np.array([None], dtype=object)}})
    with pytest.raises(BundleError, match=r"^hmm\.npz: array 'means' has object dtype"):
        save_bundle(bad, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_bad_values_are_refused_before_writing(bundle: ModelBundle, tmp_path: Path) -> None:
    nan_threshold = ModelBundle(**{**bundle.__dict__, "thresholds": {"min_conf": float("nan")}})
    with pytest.raises(BundleError, match=r"^policy\.json: threshold 'min_conf' is not finite"):
        save_bundle(nan_threshold, tmp_path / "a")
    nan_metric = bundle.with_metadata(metrics={"sharpe": float("nan")})
    with pytest.raises(BundleError, match=r"^metadata\.json: cannot encode"):
        save_bundle(nan_metric, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    save_bundle(bundle, tmp_path / "c")
    with pytest.raises(BundleError, match="not an empty directory"):
        save_bundle(bundle, tmp_path / "c")


def test_metadata_numpy_scalars_are_plain_json(bundle: ModelBundle, tmp_path: Path) -> None:
    b = bundle.with_metadata(metrics={"n": np.int64(3), "x": np.float32(0.5)}, days=("a", "b"))
    save_bundle(b, tmp_path)
    loaded = load_bundle(tmp_path)
    assert loaded.metadata["metrics"] == {"n": 3, "x": 0.5}
    assert loaded.metadata["days"] == ["a", "b"]


def test_feature_histograms_are_a_distribution() -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack(
        [rng.normal(size=10_000), np.full(10_000, 3.0), rng.exponential(size=10_000)]
    )
    X[0, 0] = 1e6  # an outlier lands in the last bin, not off the edge
    h = feature_histograms(X, ["a", "const", "skew"], bins=32)
    for name, col in zip(["a", "const", "skew"], X.T, strict=True):
        entry = h[name]
        assert entry["edges"].shape == (33,) and entry["counts"].shape == (32,)
        assert int(entry["counts"].sum()) == 10_000
        assert float(entry["probs"].sum()) == pytest.approx(1.0, abs=1e-12)
        assert np.array_equal(histogram_counts(entry["edges"], col), entry["counts"])
    assert h["a"]["counts"][-1] >= 1 and h["a"]["edges"][-1] < 10
    assert h["const"]["counts"].max() == 10_000  # constant feature: one full bin
    # Standard normal: central bins hold more mass than the tails.
    assert h["a"]["probs"][15] > 5 * h["a"]["probs"][1]


def test_feature_histograms_refuse_nan_and_bad_shapes() -> None:
    X = np.zeros((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"feature 'b': 1 non-finite values"):
        feature_histograms(X, ["a", "b"])
    with pytest.raises(ValueError, match=r"expected \(rows, 3\)"):
        feature_histograms(X, ["a", "b", "c"])


def test_npz_bytes_do_not_depend_on_memory_layout() -> None:
    x = np.arange(12.0).reshape(3, 4)
    c = encode_npz({"x": x, "s": np.array(2)}, "t.npz")
    assert encode_npz({"s": np.array(2), "x": np.asfortranarray(x)}, "t.npz") == c
    assert encode_npz({"x": x[:, ::-1][:, ::-1], "s": np.array(2)}, "t.npz") == c
    back = decode_npz(c, "t.npz")
    assert back["s"].shape == () and np.array_equal(back["x"], x)
