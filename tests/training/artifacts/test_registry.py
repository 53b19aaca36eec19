"""Model registry on a local directory and on a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from tests.bundle_setup import make_bundle
from tests.bundle_setup import policy_bytes
from training.artifacts.bundle import MANIFEST
from training.artifacts.bundle import BundleIntegrityError
from training.artifacts.bundle import ModelBundle
from training.artifacts.registry import Registry
from training.artifacts.registry import RegistryError
from training.artifacts.registry import VersionInfo

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real moto S3 server on 127.0.0.1 (free port), for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty registry root: a local directory or ``s3://<new bucket>/models``."""
    if request.param == "local":
        return str(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    for key, value in {
        "NHMM_S3_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        allow_bucket_creation=True,
    )
    fs.create_dir(bucket)
    return f"s3://{bucket}/models"


@pytest.fixture(scope="module")
def policy() -> bytes:
    return policy_bytes()


def bundle(seed: int, policy: bytes) -> ModelBundle:
    return make_bundle(seed, policy=policy, code_version="test-0")


def test_register_load_resolve(root: str, policy: bytes) -> None:
    reg = Registry(root)
    b1 = bundle(1, policy)
    v1 = reg.register(b1)
    assert v1.startswith("v0001-") and len(v1) == len("v0001-") + 8
    assert reg.resolve("candidate") == v1 == reg.resolve("v1") == reg.resolve("1")
    assert reg.load(v1) == b1  # metadata already complete: stored exactly as given
    assert reg.load(v1, expected_schema_version="FEATURES_V1").metadata["code_version"] == "test-0"
    v2 = reg.register(bundle(2, policy))
    assert v2.startswith("v0002-")
    assert reg.aliases() == {"candidate": v2}
    infos = reg.versions()
    assert [i.version for i in infos] == [v1, v2]
    assert infos[1] == VersionInfo(
        version=v2,
        number=2,
        bundle_id=infos[1].bundle_id,
        created_at="2024-05-01T00:00:00+00:00",
        parent=None,
        sweep_id=None,
        trial_id=None,
        aliases=("candidate",),
        metrics={"sharpe": 1.25, "hit_rate": 0.52, "n_trades": 42},
        code_version="test-0",
        data_hash="ab" * 32,
        symbol_days=("BTCUSDT/2024-04-01", "BTCUSDT/2024-04-02"),
    )
    assert v2.endswith(infos[1].bundle_id[:8])
    with pytest.raises(RegistryError, match="unknown model ref 'live'"):
        reg.resolve("live")
    with pytest.raises(RegistryError, match="unknown version 'v0009-deadbeef'"):
        reg.load("v0009-deadbeef")


def test_promote_rollback_and_audit_log(root: str, policy: bytes) -> None:
    reg = Registry(root)
    v1 = reg.register(bundle(1, policy))
    assert reg.promote() == v1  # candidate -> live
    v2 = reg.register(bundle(2, policy))
    v3 = reg.register(bundle(3, policy), alias=None)
    assert reg.aliases() == {"candidate": v2, "live": v1}
    assert reg.promote("candidate") == v2
    assert reg.promote(v3, alias="live") == v3
    assert reg.alias_history("live") == [v1, v2]
    assert reg.info("live").aliases == ("live",)
    assert reg.rollback() == v2
    assert reg.rollback("live") == v1
    assert reg.load("live") == reg.load(v1)
    with pytest.raises(RegistryError, match="no earlier version to roll back to"):
        reg.rollback("live")
    with pytest.raises(RegistryError, match="alias 'staging' is not set"):
        reg.rollback("staging")
    assert reg.promote("live") == v1  # promoting the current target changes nothing
    assert reg.alias_history("live") == []
    with pytest.raises(RegistryError, match="invalid alias"):
        reg.promote(v1, alias="v12")
    with pytest.raises(RegistryError, match="invalid alias"):
        reg.register(bundle(4, policy), alias="Live!")
    actions = [(e["action"], e.get("alias"), e.get("version")) for e in reg.events()]
    assert actions == [
        ("register", None, v1),
        ("alias", "candidate", v1),
        ("promote", "live", v1),
        ("register", None, v2),
        ("alias", "candidate", v2),
        ("register", None, v3),
        ("promote", "live", v2),
        ("promote", "live", v3),
        ("rollback", "live", v2),
        ("rollback", "live", v1),
    ]
    assert all(e["time"] and e["pid"] == os.getpid() for e in reg.events())


def test_lineage_and_sweep_ids(root: str, policy: bytes) -> None:
    reg = Registry(root)
    base = reg.register(bundle(1, policy), sweep_id="sweep-7", trial_id="t3")
    reg.promote()
    child = reg.register(bundle(2, policy), parent="live")
    grandchild = reg.register(bundle(3, policy), parent=child)
    assert reg.lineage(grandchild) == [grandchild, child, base]
    assert reg.lineage("candidate") == [grandchild, child, base]
    assert reg.lineage(base) == [base]
    assert reg.load(child).metadata["parent"] == base
    info = reg.info(base)
    assert (info.sweep_id, info.trial_id, info.parent) == ("sweep-7", "t3", None)
    assert reg.info(grandchild).parent == child
    with pytest.raises(RegistryError, match="unknown model ref 'nope'"):
        reg.register(bundle(4, policy), parent="nope")
    assert len(reg.versions()) == 3


def test_versions_are_immutable(root: str, policy: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(root)
    b = bundle(1, policy)
    v1 = reg.register(b)
    v2 = reg.register(b)  # same content: a new version, the first one untouched
    assert v1 != v2 and v1[-8:] == v2[-8:] and reg.load(v1) == reg.load(v2) == b
    before = {n: reg._store.read(f"versions/{v1}/{n}") for n in reg._store.list(f"versions/{v1}")}
    # A store that hands out a number already used must not overwrite the existing version.
    monkeypatch.setattr(reg, "_claim_version", lambda bundle_id: v1)
    with pytest.raises(RegistryError, match=f"version {v1} already exists"):
        reg.register(b)
    after = {n: reg._store.read(f"versions/{v1}/{n}") for n in reg._store.list(f"versions/{v1}")}
    assert after == before
    assert reg.load(v1) == b and [i.version for i in reg.versions()] == [v1, v2]


@pytest.mark.parametrize(
    "fail_on", ["staging/policy.ubj", "versions/policy.ubj", "versions/manifest"]
)
def test_failure_mid_write_leaves_no_visible_version(
    root: str, policy: bytes, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    reg = Registry(root)
    store = reg._store
    real_write = store.write
    area, _, name = fail_on.partition("/")

    def failing_write(key: str, data: bytes) -> None:
        if key.startswith(area + "/") and key.rsplit("/", 1)[-1].startswith(name):
            raise OSError(f"disk full while writing {key}")
        real_write(key, data)

    monkeypatch.setattr(store, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        reg.register(bundle(1, policy))
    assert reg.versions() == [] and reg.aliases() == {}
    assert store.list("versions") == [] and store.list("staging") == []
    assert [e["action"] for e in reg.events()] == []
    with pytest.raises(RegistryError):
        reg.load("candidate")
    monkeypatch.setattr(store, "write", real_write)
    v = reg.register(bundle(1, policy))
    assert reg.resolve("candidate") == v and reg.load(v) == bundle(1, policy)


def test_corrupt_version_is_refused_and_missing_manifest_is_invisible(
    root: str, policy: bytes
) -> None:
    reg = Registry(root)
    v1 = reg.register(bundle(1, policy))
    v2 = reg.register(bundle(2, policy))
    store = reg._store
    data = bytearray(store.read(f"versions/{v2}/hmm.npz"))
    data[100] ^= 0xFF
    store.write(f"versions/{v2}/hmm.npz", bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"^hmm\.npz: SHA-256"):
        reg.load(v2)
    with pytest.raises(BundleIntegrityError, match=r"^hmm\.npz"):
        reg.promote("candidate")
    assert "live" not in reg.aliases()
    # A crash before the manifest landed: the directory exists but the version does not.
    store.delete_file(f"versions/{v1}/{MANIFEST}")
    assert [i.version for i in reg.versions()] == [v2]
    with pytest.raises(RegistryError, match=f"unknown version '{v1}'"):
        reg.resolve(v1)
    store.write("staging/deadbeef/schema.json", b"{}")
    assert reg.cleanup(max_age_s=3600) == []  # too fresh: might be a registration in progress
    assert sorted(reg.cleanup(max_age_s=0)) == ["staging/deadbeef", f"versions/{v1}"]
    assert store.list("versions") == [v2] and store.list("staging") == []
    v3 = reg.register(bundle(3, policy))
    assert v3.startswith("v0003-")  # numbers are never reused


def test_concurrent_registers_get_distinct_versions(root: str, policy: bytes) -> None:
    reg = Registry(root)
    bundles = [bundle(i, policy) for i in range(8)]
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(bundles))

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = Registry(root).register(bundles[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(bundles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = sorted(results.values())
    assert len(set(versions)) == 8
    assert [i.version for i in reg.versions()] == sorted(versions, key=lambda v: int(v[1:5]))
    numbers = sorted(int(v[1:5]) for v in versions)
    if root.startswith("s3://"):
        assert len(set(numbers)) == 8  # contenders that collide skip a number on S3
    else:
        assert numbers == list(range(1, 9))
    for i, v in results.items():
        assert reg.load(v) == bundles[i]
    assert reg.resolve("candidate") in versions


_WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from training.artifacts.bundle import ModelBundle
    from training.artifacts.registry import Registry

    root, seed = sys.argv[1], int(sys.argv[2])
    reg = Registry(root)
    for j in range(2):
        b = ModelBundle(
            schema={"version": "FEATURES_V1"}, scaler={}, hmm={"seed": np.array([seed, j])},
            policy_ubj=b"ubj", policy_config={}, thresholds={"min_conf": 0.5}, histograms={},
            metadata={"created_at": "2024-01-01T00:00:00+00:00"})
        print(reg.register(b))
    """
)


def test_concurrent_registers_across_processes(root: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, root, str(seed)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(3)
    ]
    versions: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        versions += out.split()
    assert len(versions) == 6 and len(set(versions)) == 6
    reg = Registry(root)
    assert sorted(i.version for i in reg.versions()) == sorted(versions)
    seeds = sorted(tuple(reg.load(v).hmm["seed"].tolist()) for v in versions)
    assert seeds == [(s, j) for s in range(3) for j in range(2)]
    registered = [e for e in reg.events() if e["action"] == "register"]
    assert len(registered) == 6 and len({e["pid"] for e in registered}) == 3


def test_default_root_comes_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: bytes
) -> None:
    monkeypatch.setenv("NHMM_REGISTRY", str(tmp_path / "envstore"))
    reg = Registry()
    assert reg.root == str(tmp_path / "envstore")
    v = reg.register(bundle(1, policy))
    assert (tmp_path / "envstore" / "versions" / v / MANIFEST).is_file()
    assert (
        json.loads((tmp_path / "envstore" / "aliases" / "candidate.json").read_text())["version"]
        == v
    )
    lines = (tmp_path / "envstore" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["register", "alias"]
    monkeypatch.delenv("NHMM_REGISTRY")
    monkeypatch.chdir(tmp_path)
    assert Registry().root == str(tmp_path / "model_store")


def test_register_fills_created_at_and_keeps_arrays_exact(tmp_path: Path, policy: bytes) -> None:
    reg = Registry(tmp_path)
    b = ModelBundle(
        schema={"version": "FEATURES_V1"},
        scaler={},
        hmm={"x": np.array([1.0, np.nan, -0.0])},
        policy_ubj=policy,
        policy_config={},
        thresholds={},
        histograms={},
        metadata={},
    )
    v = reg.register(b)
    loaded = reg.load(v)
    assert loaded.metadata["created_at"] and loaded.metadata["code_version"]
    assert np.array_equal(loaded.hmm["x"], b.hmm["x"], equal_nan=True)
    assert np.signbit(loaded.hmm["x"][2])
