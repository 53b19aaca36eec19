"""The bundle's optional ``online.npz`` (online-EM memory): exact round trip through a directory
and the registry, covered by the manifest, and bundles without it load as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.bundle_setup import hmm_params
from tests.bundle_setup import make_bundle
from training.artifacts.bundle import BUNDLE_FILES
from training.artifacts.bundle import MANIFEST
from training.artifacts.bundle import ONLINE_FILE
from training.artifacts.bundle import BundleIntegrityError
from training.artifacts.bundle import ModelBundle
from training.artifacts.bundle import bundle_files
from training.artifacts.bundle import load_bundle
from training.artifacts.bundle import save_bundle
from training.artifacts.registry import Registry
from training.models.hmm import sample_hmm
from training.models.online import OnlineMemory
from training.models.online import training_memory


@pytest.fixture(scope="module")
def with_memory() -> tuple[ModelBundle, OnlineMemory]:
    params = hmm_params()
    X, _ = sample_hmm(params, 3000, seed=4)
    memory = training_memory(params, X, [1000, 2000])
    return make_bundle().with_online(memory), memory


def same_memory(a: OnlineMemory, b: OnlineMemory) -> bool:
    left, right = a.to_arrays(), b.to_arrays()
    return left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) for k in left)


def test_memory_round_trips_through_a_directory(with_memory, tmp_path: Path) -> None:
    bundle, memory = with_memory
    save_bundle(bundle, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == sorted((*BUNDLE_FILES, ONLINE_FILE, MANIFEST))
    loaded = load_bundle(tmp_path / "b")
    assert loaded == bundle
    back = loaded.online_memory()
    assert back is not None and same_memory(back, memory)
    assert back.stats.n_samples == 3000 and back.reservoir is not None
    assert back.reservoir.X.shape[1:] == (32, 10)
    np.testing.assert_array_equal(back.reservoir.reference_ll, memory.reservoir.reference_ll)


def test_bundle_without_memory_is_unchanged(tmp_path: Path) -> None:
    plain = make_bundle()
    assert plain.online == {} and plain.online_memory() is None
    assert ONLINE_FILE not in bundle_files(plain)
    save_bundle(plain, tmp_path / "p")
    assert load_bundle(tmp_path / "p").online_memory() is None
    assert plain.with_online(None) == plain


def test_memory_is_covered_by_the_manifest(with_memory, tmp_path: Path) -> None:
    bundle, _ = with_memory
    save_bundle(bundle, tmp_path / "t")
    path = tmp_path / "t" / ONLINE_FILE
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"^online\.npz: SHA-256"):
        load_bundle(tmp_path / "t")
    save_bundle(bundle, tmp_path / "m")
    (tmp_path / "m" / ONLINE_FILE).unlink()
    with pytest.raises(BundleIntegrityError, match=r"^online\.npz: missing"):
        load_bundle(tmp_path / "m")


def test_registry_stores_the_memory(with_memory, tmp_path: Path) -> None:
    bundle, memory = with_memory
    reg = Registry(tmp_path)
    version = reg.register(bundle)
    back = reg.load(version).online_memory()
    assert back is not None and same_memory(back, memory)
    files = bundle_files(bundle)
    size = len(files[ONLINE_FILE])
    # the reservoir dominates: 3 states x 16 segments x 32 rows x 10 features x 8 bytes
    assert 3 * 16 * 32 * 10 * 8 < size < 200_000
