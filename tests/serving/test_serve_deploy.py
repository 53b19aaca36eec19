"""The shipped ``serving/serve_config.yaml``, deployed with ``serve deploy`` on a real
``ray start --head`` whose environment is a cluster's: a registry root in ``NHMM_REGISTRY``,
credentials (``NHMM_ADMIN_TOKEN``, AWS keys) and a ``PATH`` without this venv.

Only the HTTP port of the config is changed (the host may have 8000 taken). What is checked: the
store Serve reads, what a ``/v1/train`` job receives and what Ray then logs and shows, drift state
on fresh ingress replicas, readiness against liveness, and the HTTP edge (auth, 404s, body size).
The OpenAPI-driven fuzzer (schemathesis) runs last against this same deployment.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cluster.runtime_env import FORWARDED_ENV_NAMES
from serving.model import InferenceModel
from tests.ray_setup import VENV_BIN
from tests.ray_setup import RayHead
from tests.ray_setup import free_port
from tests.ray_setup import ray_env
from tests.ray_setup import start_ray_head
from tests.waiting import wait_for
from training.artifacts.registry import Registry

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[2] / "serving" / "serve_config.yaml"
V1 = "FEATURES_V1"
SECRETS = {
    "NHMM_ADMIN_TOKEN": f"Tok3n-{uuid.uuid4().hex}",
    "AWS_SECRET_ACCESS_KEY": f"Aws5ecret-{uuid.uuid4().hex}",
    "AWS_ACCESS_KEY_ID": f"AKIA{uuid.uuid4().hex[:16].upper()}",
}
AUTH = {"Authorization": f"Bearer {SECRETS['NHMM_ADMIN_TOKEN']}"}
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"  # no venv: `nhmm` is not on it


@dataclass(frozen=True)
class Deployed:
    url: str
    port: int
    head: RayHead
    root: str  # the registry root as the registry spells it
    config: dict[str, Any]


def deploy_shipped_config(head: RayHead, out_dir: Path) -> tuple[int, dict[str, Any]]:
    """``serve deploy`` the shipped config with only its HTTP port moved to a free one."""
    raw = yaml.safe_load(CONFIG.read_text())
    port = free_port()
    raw["http_options"]["port"] = port
    path = out_dir / "serve_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [str(VENV_BIN / "serve"), "deploy", str(path), "--address", head.dashboard_url],
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return port, raw


@pytest.fixture(scope="module")
def deployed(registry_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    import ray

    env = {**SECRETS, "NHMM_REGISTRY": str(registry_root), "PATH": BARE_PATH}
    head = start_ray_head(env=env)
    try:
        port, raw = deploy_shipped_config(head, tmp_path_factory.mktemp("deploy"))
        url = f"http://127.0.0.1:{port}"
        n = raw["applications"][0]["args"]["ingress_replicas"]
        wait_for(lambda: httpx.get(f"{url}/v1/models", timeout=5).status_code == 200, 240, "Serve")
        ray.init(address=head.gcs_address, log_to_driver=False)  # to kill replicas
        wait_for(lambda: len(ingress_replicas()) == n, 120, f"{n} ingress replicas")
        yield Deployed(url, port, head, Registry(registry_root).root, raw)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.stop()


@pytest.fixture(scope="module")
def http(deployed: Deployed) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployed.url, timeout=60.0) as c:
        yield c


def ingress_replicas() -> set[str]:
    import ray

    return {
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::nhmm#Ingress#")
    }


def leaks(directory: Path, secrets: dict[str, str]) -> list[tuple[str, str]]:
    """``(file, variable)`` for every file under ``directory`` holding a secret's value."""
    found = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), k) for k, v in secrets.items() if v.encode() in data]
    return found


# -- the store: NHMM_REGISTRY wins when the config names none --------------------------------


def test_shipped_config_names_no_store_and_serve_reads_nhmm_registry(
    deployed: Deployed, http: httpx.Client
) -> None:
    (app,) = deployed.config["applications"]
    assert "registry" not in app["args"]
    reg = Registry(deployed.root)
    body = http.get("/v1/models").json()
    assert [v["version"] for v in body["versions"]] == [v.version for v in reg.versions()]
    assert body["aliases"] == reg.aliases() and set(body["aliases"]) == {"live", "candidate"}
    assert http.get("/healthz").json()["live"] == reg.resolve("live")


# -- POST /v1/train: references, not secrets ---------------------------------------------------


@pytest.fixture(scope="module")
def train_job(deployed: Deployed, http: httpx.Client) -> dict[str, Any]:
    """One ``nhmm sweep --help`` job submitted through ``/v1/train``, waited for."""
    sid = f"nhmm-train-{uuid.uuid4().hex[:8]}"
    r = http.post("/v1/train", json={"args": ["--help"], "submission_id": sid}, headers=AUTH)
    assert r.status_code == 200, r.text
    submitted = r.json()
    assert submitted["job_id"] == sid

    def finished() -> dict[str, Any] | None:
        s = http.get(f"/v1/train/{sid}", headers=AUTH).json()
        return s if s["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None

    done = wait_for(finished, 240, "the train job")
    info = httpx.get(f"{deployed.head.dashboard_url}/api/jobs/{sid}", timeout=10).json()
    return {"id": sid, "submitted": submitted, "done": done, "info": info}


def test_train_job_leaks_no_secret_to_ray_logs_or_job_api(
    deployed: Deployed, train_job: dict[str, Any]
) -> None:
    dashboard = deployed.head.dashboard_url
    shown = "".join(
        httpx.get(f"{dashboard}{path}", timeout=10).text
        for path in ("/api/jobs/", f"/api/jobs/{train_job['id']}")
    )
    assert train_job["id"] in shown
    assert [k for k, v in SECRETS.items() if v in shown] == []
    logs = deployed.head.temp_dir / "session_latest" / "logs"
    assert len(list(logs.rglob("*.log"))) > 10  # the directory Ray writes to, not an empty one
    assert leaks(logs, SECRETS) == []


def test_train_job_gets_the_store_by_value_and_credentials_by_name(
    deployed: Deployed, train_job: dict[str, Any]
) -> None:
    env_vars = dict(train_job["info"]["runtime_env"]["env_vars"])
    assert env_vars.pop("NHMM_REGISTRY") == deployed.root
    assert env_vars.pop("NHMM_CREDENTIAL_VARS") == "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"
    assert set(env_vars) <= set(FORWARDED_ENV_NAMES)  # settings of this host (AWS_CA_BUNDLE...)


def test_train_entrypoint_needs_no_path(deployed: Deployed, train_job: dict[str, Any]) -> None:
    """The cluster's PATH has no ``nhmm``: the job names its interpreter by absolute path."""
    argv = shlex.split(train_job["submitted"]["entrypoint"])
    assert Path(argv[0]).is_absolute() and argv[1:] == ["-m", "training.cli", "sweep", "--help"]
    assert shutil.which("nhmm", path=BARE_PATH) is None
    assert train_job["done"]["status"] == "SUCCEEDED", train_job["done"]
    from ray.job_submission import JobSubmissionClient

    logs = JobSubmissionClient(deployed.head.dashboard_url).get_job_logs(train_job["id"])
    assert "Usage:" in logs and "sweep" in logs


# -- the HTTP edge ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/partial_fit", {"schema_version": V1, "X": "not rows", "bogus": 1}),
        ("post", "/v1/models/v0001/promote", {"alias": 5}),
        ("post", "/v1/aliases/live/rollback", None),
        ("post", "/v1/train", {"args": 7}),
        ("get", "/v1/train/raysubmit_x", None),
    ],
)
@pytest.mark.parametrize("auth", [None, "Bearer wrong"])
def test_admin_routes_refuse_before_reading_the_body(
    http: httpx.Client, method: str, path: str, body: Any, auth: str | None
) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    r = http.request(method, path, json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer ")
    assert r.json() == {
        "detail": "admin token required (Authorization: Bearer ...)",
        "field": "authorization",
    }


def test_not_found_shows_no_store_path_or_aliases(deployed: Deployed, http: httpx.Client) -> None:
    calls = [
        http.post("/v1/infer", json={"schema_version": V1, "model": "nosuch", "features": [0.0]}),
        http.post(
            "/v1/infer",
            json={"schema_version": V1, "model": "v0099-deadbeef", "features": [0.0] * 10},
        ),
        http.get("/v1/drift", params={"model": "nosuch"}),
        http.post("/v1/models/v0099-deadbeef/promote", headers=AUTH),
        http.post(
            "/v1/partial_fit",
            headers=AUTH,
            json={"schema_version": V1, "model": "nosuch", "X": [[0.0] * 10] * 10},
        ),
    ]
    for r in calls:
        assert r.status_code == 404, r.text
        assert deployed.root not in r.text and "registry" not in r.text.lower(), r.text
        assert "candidate" not in r.text and "aliases" not in r.text, r.text


def test_body_over_the_limit_is_413_before_it_is_read(deployed: Deployed) -> None:
    conn = HTTPConnection("127.0.0.1", deployed.port, timeout=20)
    try:
        conn.putrequest("POST", "/v1/infer")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(1 << 30))  # 1 GiB announced, 40 bytes sent
        conn.endheaders()
        conn.send(b'{"schema_version": "FEATURES_V1", "feat')
        t0 = time.monotonic()
        resp = conn.getresponse()
        body = resp.read()
        waited = time.monotonic() - t0
    finally:
        conn.close()
    assert resp.status == 413, body
    assert b'"field":"body"' in body.replace(b" ", b"") and waited < 10


def test_streamed_body_over_the_limit_is_413(deployed: Deployed, http: httpx.Client) -> None:
    limit = 16 * 2**20

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"schema_version": "FEATURES_V1", "features": ['
        for _ in range(limit // 2**20 + 1):
            yield b"0.0," * (2**20 // 4)

    try:
        r = http.post("/v1/infer", content=chunks(), headers={"content-type": "application/json"})
    except httpx.TransportError as exc:  # the server may close while we still write
        pytest.fail(f"no 413 answer: {exc!r}")
    assert r.status_code == 413 and r.json()["field"] == "body", r.text


# -- state a fresh replica serves ------------------------------------------------------------


def test_fresh_ingress_replicas_answer_with_the_drift_servers_state(
    deployed: Deployed, http: httpx.Client, bundles
) -> None:
    import ray

    reg = Registry(deployed.root)
    live = reg.resolve("live")
    X = bundles[0][1][:300] + 5.0  # far from the training histograms: KL over threshold
    for lo in range(0, len(X), 100):
        items = [{"features": x.tolist()} for x in X[lo : lo + 100]]
        r = http.post("/v1/infer", json={"schema_version": V1, "items": items})
        assert r.status_code == 200, r.text
    wait_for(lambda: http.get("/v1/drift").json()["adapting"], 60, "live marked adapting")

    old = ingress_replicas()
    for name in old:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    n = len(old)
    wait_for(lambda: len(ingress_replicas() - old) == n, 120, "fresh ingress replicas")

    factor = deployed.config["applications"][0]["args"]["adapt_confidence_factor"]
    local = InferenceModel(reg.load(live), version=live)
    x = X[-1]
    raw = local.infer(x, None, V1)
    for _ in range(3 * n):  # the first answers of every fresh replica
        r = http.post("/v1/infer", json={"schema_version": V1, "features": x.tolist()})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["adapting"] is True and got["drift"] > 0.5, got
        assert got["confidence"] == raw.confidence * factor and got["posterior"] == raw.posterior
    assert http.get("/v1/drift").json()["adapting"] is True


# -- readiness and liveness ------------------------------------------------------------------


def test_readiness_fails_when_live_cannot_load_liveness_stays(
    deployed: Deployed, http: httpx.Client, bundles
) -> None:
    reg = Registry(deployed.root)
    before = reg.resolve("live")
    assert http.get("/healthz").status_code == 200
    bundle = bundles[1][0]
    bundle = dataclasses.replace(bundle, metadata={**bundle.metadata, "note": "readiness"})
    version = reg.register(bundle, alias=None)
    r = http.post(f"/v1/models/{version}/promote", headers=AUTH)
    assert r.status_code == 200, r.text
    vdir = Path(deployed.root) / "versions" / version
    victim = next(p for p in sorted(vdir.iterdir()) if p.name != "manifest.json")
    good = victim.read_bytes()
    try:
        victim.write_bytes(good[:-8] + bytes(8))  # tampered: its SHA-256 no longer matches
        time.sleep(0.5)  # past alias_ttl_s
        for _ in range(4):  # every replica
            h = http.get("/healthz")
            assert h.status_code == 503, h.text
            assert h.json()["status"] == "unavailable" and h.json()["live"] == version
            assert http.get("/livez").status_code == 200
        r = http.post("/v1/infer", json={"schema_version": V1, "features": [0.0] * 10})
        assert r.status_code == 409, r.text
        victim.unlink()  # missing
        assert http.get("/healthz").status_code == 503
    finally:
        victim.write_bytes(good)
    wait_for(lambda: http.get("/healthz").status_code == 200, 10, "ready again")
    r = http.post("/v1/aliases/live/rollback", headers=AUTH)
    assert r.status_code == 200 and r.json()["version"] == before, r.text


# -- the OpenAPI document is the contract: property-based fuzzing (last: it moves aliases) ------

FUZZ_EXAMPLES = 10  # per operation and phase: ~500 requests, under a minute
FUZZ_CONFIG = """
[checks.positive_data_acceptance]
# A request the schema allows may still be refused by the model or the deployment: a vector of
# another length than the version's feature schema (the document cannot know each version's
# feature count: 422), more items or rows than max_batch / max_fit_rows (413). Both statuses are
# documented on the routes; every other check keeps its defaults.
expected-statuses = ["2xx", "401", "404", "409", "413", "422"]
"""


def test_openapi_fuzz_finds_no_server_error_and_no_contract_violation(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """schemathesis, every check on (status codes, response schemas and headers, content types,
    positive and negative data, auth enforced, unsupported methods), admin token given."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG)
    har = tmp_path / "fuzz.har"
    cmd = [
        str(VENV_BIN / "st"),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{deployed.url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: {AUTH['Authorization']}",
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--seed",
        "16",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(e["response"]["status"] for e in entries)
    with capsys.disabled():
        print(f"\nschemathesis: {len(entries)} requests, statuses {dict(sorted(statuses.items()))}")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout
    assert [s for s in statuses if s >= 500] == []
    assert len(entries) >= 300
    assert {200, 400, 401, 404, 405, 409, 422} <= set(statuses)
