"""Auto-adaptation, admin token, ``/v1/train`` and the app's metrics on one real local Serve.

The Serve runs with ``auto_adapt`` on and an admin token, on the package's ``ray start --head``
instance (``serve_head``; the application is deleted after this module): the dashboard's job
server for ``/v1/train``, its metrics export port scraped every second by a real Prometheus
(the ``prometheus`` binary). An embedded ``ray.init`` cannot be used here: it cannot
move the dashboard agent off its fixed default port, which any other Ray on the host holds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serving.adapt import fit_child
from serving.model import InferenceError
from serving.model import InferenceModel
from serving.model import SchemaVersionMismatch
from serving.testing import local_serve
from serving.testing import make_bundle
from tests.prometheus_setup import run_prometheus
from tests.serve_setup import ServeHead
from tests.waiting import wait_for
from training.artifacts.bundle import ModelBundle
from training.artifacts.registry import Registry
from training.artifacts.registry import RegistryError
from training.models.online import OnlineEMConfig

V1 = "FEATURES_V1"
TOKEN = "test-admin-token-5"


@pytest.fixture(scope="module")
def bundles() -> list[tuple[ModelBundle, np.ndarray]]:
    """Two bundles WITHOUT online-EM memory: these tests drive the adaptation machinery
    (drift -> child -> promotion) with another model's rows, a shift the memory's guard refuses
    as "regime forgotten" (that refusal is tests/serving/test_adapt_memory.py's subject)."""
    return [make_bundle(1, memory=False), make_bundle(2, memory=False)]


AUTH = {"Authorization": f"Bearer {TOKEN}"}
FACTOR = 0.5
ARGS: dict[str, Any] = {
    "auto_adapt": True,
    "admin_token": TOKEN,
    "adapt_confidence_factor": FACTOR,
    "adapt_min_rows": 250,  # the child (still drifted, see below) does not adapt in the test
    "adapt_cooldown_s": 3600.0,
    "drift_window": 400,
    "drift_min_samples": 150,
    "kl_threshold": 0.5,
    "alias_ttl_s": 0.0,
    "drift_flush_s": 0.02,
}
SHIFTED = 2  # index of the feature the test moves


@dataclass(frozen=True)
class Server:
    url: str
    metrics_port: int
    dashboard: str


@pytest.fixture(scope="module")
def server(registry_root: Path, serve_head: ServeHead) -> Iterator[Server]:
    """Serve on the package's ``ray start --head`` (every port free-picked, dashboard for jobs,
    metrics export port reporting every 0.5 s); the application is deleted after."""
    head = serve_head.head
    args = {**ARGS, "jobs_address": head.dashboard_url}
    with local_serve(registry_root, args, address=head.gcs_address, port=serve_head.port) as url:
        yield Server(url, head.ports["metrics-export-port"], head.dashboard_url)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        yield c


@pytest.fixture(scope="module")
def prometheus(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping Ray's metrics export port every second; yields its URL."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "ray",
                "static_configs": [{"targets": [f"127.0.0.1:{server.metrics_port}"]}],
            }
        ],
    }
    with run_prometheus(config, tmp_path_factory.mktemp("prometheus")) as url:
        yield url


def drift(http: httpx.Client, model: str) -> dict[str, Any]:
    r = http.get("/v1/drift", params={"model": model})
    assert r.status_code == 200, r.text
    return r.json()


def send(http: httpx.Client, model: str, X: np.ndarray, batch: int = 25) -> list[dict[str, Any]]:
    """Serve rows of ``X`` in batches (each item from the start distribution)."""
    out = []
    for lo in range(0, len(X), batch):
        items = [{"features": x.tolist()} for x in X[lo : lo + batch]]
        r = http.post("/v1/infer", json={"schema_version": V1, "model": model, "items": items})
        assert r.status_code == 200, r.text
        out.extend(r.json()["results"])
        time.sleep(0.01)
    return out


def test_fit_child_registers_guarded_child_keeping_the_drift_reference(
    tmp_path: Path, bundles
) -> None:
    """A bundle without online memory (from before issue 12) adapts from its own parameters
    standing for ``OnlineEMConfig.prior_samples`` rows; the child carries the memory on.
    Issue 12 changed the drift reference: the child keeps the parent's training histograms
    for every feature (it used to take the window's histogram for the drifted ones)."""
    bundle, X = bundles[0]
    reg = Registry(tmp_path)
    parent = reg.register(bundle, alias="live")
    S = X[:300].copy()
    S[:, SHIFTED] += 4.0
    out = fit_child(reg, "live", S, V1, alias="live", only_if_alias_at_parent=True)
    assert out.accepted and out.promoted and out.parent == parent and out.n_samples == 300
    assert out.heldout_ll_after > out.heldout_ll_before and 0 < out.fit_ms <= out.total_ms
    assert reg.resolve("live") == out.version and reg.lineage(out.version) == [out.version, parent]
    child = reg.load(out.version)
    for name, h in bundle.histograms.items():
        np.testing.assert_array_equal(child.histograms[name]["edges"], h["edges"])
        np.testing.assert_array_equal(child.histograms[name]["counts"], h["counts"])
    assert child.metadata["partial_fit"]["n_samples"] == 300
    assert "seed" not in child.metadata and child.metadata["symbol_days"] == ["SYNTH/2024-01-01"]
    memory = child.online_memory()
    assert bundle.online_memory() is None and memory is not None and memory.reservoir is None
    assert memory.stats.n_samples == OnlineEMConfig().prior_samples + 240
    assert bundle.hmm_params().equals(reg.load(parent).hmm_params())  # parent untouched

    # the alias moved on meanwhile: the child is registered but does not take it over
    again = fit_child(reg, parent, S, V1, alias="live", only_if_alias_at_parent=True)
    assert again.accepted and not again.promoted and again.alias is None
    assert reg.resolve("live") == out.version


def test_fit_child_refuses_bad_input(tmp_path: Path, bundles) -> None:
    bundle, X = bundles[0]
    reg = Registry(tmp_path)
    reg.register(bundle, alias="live")
    n = len(reg.versions())
    with pytest.raises(SchemaVersionMismatch, match="schema_version"):
        fit_child(reg, "live", X[:50], "FEATURES_V0")
    rows = X[:50].tolist()
    rows[7] = rows[7][:9]
    with pytest.raises(InferenceError) as info:
        fit_child(reg, "live", rows, V1)
    assert info.value.field == "X[7]"
    with pytest.raises(InferenceError, match="fewer than 2"):
        fit_child(reg, "live", X[:2], V1)
    with pytest.raises(RegistryError):
        fit_child(reg, "nosuch", X[:50], V1)
    assert len(reg.versions()) == n  # nothing registered


def test_fit_child_rows_the_model_cannot_score_are_bad_input(tmp_path: Path, bundles) -> None:
    """Online EM's numeric failure (zero likelihood under every state) is the caller's 422."""
    bundle, X = bundles[0]
    reg = Registry(tmp_path)
    reg.register(bundle, alias="live")
    rows = X[:12].copy()
    rows[3, 5] = 1e300  # in-process callers bypass the HTTP schema's bound
    with pytest.raises(InferenceError) as info:
        fit_child(reg, "live", rows, V1)
    assert info.value.field == "X" and info.value.status == 422
    assert "likelihood" in str(info.value)
    assert len(reg.versions()) == 1


@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"bearer {TOKEN}", TOKEN])
def test_admin_endpoints_refuse_without_the_token(
    http: httpx.Client, registry_root: Path, bundles, auth: str | None
) -> None:
    reg = Registry(registry_root)
    before = (reg.aliases(), [v.version for v in reg.versions()])
    headers = {} if auth is None else {"Authorization": auth}
    X = bundles[0][1][:50].tolist()
    calls = [
        ("post", f"/v1/models/{reg.resolve('candidate')}/promote", {"alias": "canary"}),
        ("post", "/v1/aliases/live/rollback", None),
        ("post", "/v1/partial_fit", {"schema_version": V1, "X": X}),
        ("post", "/v1/train", {"args": ["--help"]}),
        ("get", "/v1/train/raysubmit_nosuchjob", None),
    ]
    for method, path, body in calls:
        r = http.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["field"] == "authorization"
    assert (reg.aliases(), [v.version for v in reg.versions()]) == before  # nothing moved


def test_admin_endpoints_work_with_the_token(
    http: httpx.Client, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    v1, v2 = reg.resolve("live"), reg.resolve("candidate")
    for v in (v1, v2):
        r = http.post(f"/v1/models/{v}/promote", json={"alias": "canary"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["version"] == v, r.text
    r = http.post("/v1/aliases/canary/rollback", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"alias": "canary", "version": v1, "previous": v2}
    body = {"schema_version": V1, "model": v2, "X": bundles[1][1][:300].tolist(), "alias": "cand2"}
    r = http.post("/v1/partial_fit", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] and out["parent"] == v2 and out["promoted"], out
    assert reg.resolve("cand2") == out["version"] and reg.lineage(out["version"]) == [
        out["version"],
        v2,
    ]
    assert 0 < out["fit_ms"] <= out["total_ms"]
    assert reg.resolve("live") == v1  # only the named aliases moved


def test_drift_triggers_adaptation_child_promoted(
    http: httpx.Client, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    parent = reg.resolve("live")
    X = bundles[0][1]
    names = reg.load(parent).feature_schema().names
    local = InferenceModel(reg.load(parent), version=parent)

    calm = send(http, "live", X[:200])
    assert all(not r["adapting"] and r["model_version"] == parent for r in calm)
    wait_for(lambda: drift(http, parent)["n_samples"] == 200, 20, "200 rows in the monitor")
    quiet = drift(http, parent)
    assert quiet["triggers"] == [] and quiet["history"] == [] and quiet["auto_adapt"]
    assert 0.0 < quiet["drift"] < ARGS["kl_threshold"]

    shifted = X[200:700].copy()
    shifted[:, SHIFTED] += 4.0  # one feature moves far from its training histogram
    served = send(http, "live", shifted)
    seen_adapting = 0
    for x, r in zip(shifted, served, strict=True):
        raw = local.infer(x, None, V1)
        if r["model_version"] != parent:
            continue  # answered by the promoted child
        assert r["posterior"] == raw.posterior and r["state"] == raw.state
        if r["adapting"]:
            seen_adapting += 1
            assert r["confidence"] == raw.confidence * FACTOR  # ADWIN may fire before KL
        else:
            assert r["confidence"] == raw.confidence
    assert seen_adapting > 0

    rep = wait_for(lambda: (d := drift(http, parent))["history"] and d, 60, "an adaptation")
    (entry,) = rep["history"]
    assert entry["parent"] == parent and entry["alias"] == "live"
    assert entry["triggers"] and set(entry["triggers"]) <= {f"kl:{names[SHIFTED]}", "adwin:loglik"}
    assert entry["accepted"] and entry["promoted"], entry
    assert ARGS["adapt_min_rows"] <= entry["n_rows"] <= ARGS["drift_window"]
    child = entry["child"]
    assert reg.resolve("live") == child and reg.lineage(child) == [child, parent]
    assert reg.load(child).metadata["adaptation"]["triggers"] == entry["triggers"]
    assert rep["drifted"] == [names[SHIFTED]] and rep["kl"][names[SHIFTED]] > 0.5
    assert rep["adapting"] and rep["model_version"] == parent

    # the parent, pinned, still reports adapting with scaled confidence
    x = shifted[-1]
    r = http.post("/v1/infer", json={"schema_version": V1, "model": parent, "features": x.tolist()})
    got, raw = r.json(), local.infer(x, None, V1)
    assert got["adapting"] and got["confidence"] == raw.confidence * FACTOR
    # live now answers with the child. Its drift reference is still the training data (issue
    # 12: it used to be the window, so the child saw no drift): the moved feature still
    # drifts, and results say so once the child's monitor has its minimum of samples
    n_child = sum(r["model_version"] == child for r in served)
    wait_for(lambda: drift(http, child)["n_samples"] == n_child, 20, "child monitor caught up")
    n_more = max(10, ARGS["drift_min_samples"] + 10 - n_child)
    after = send(http, "live", X[700 : 700 + n_more] + np.eye(len(names))[SHIFTED] * 4.0)
    assert {r["model_version"] for r in after} == {child}
    want = n_child + len(after)
    wait_for(lambda: drift(http, child)["n_samples"] == want, 20, "child monitor fed")
    rep = drift(http, child)
    assert rep["drifted"] == [names[SHIFTED]] and rep["adapting"] and len(rep["history"]) == 1
    child_local = InferenceModel(reg.load(child), version=child)
    r = http.post("/v1/infer", json={"schema_version": V1, "model": "live", "features": x.tolist()})
    got, raw = r.json(), child_local.infer(x, None, V1)
    assert got["model_version"] == child and got["adapting"]
    assert got["confidence"] == raw.confidence * FACTOR
    assert reg.load(child).histograms[names[SHIFTED]]["counts"].tolist() == (
        reg.load(parent).histograms[names[SHIFTED]]["counts"].tolist()
    )
    # the cooldown is the lineage's: the still-drifting child, fed more than adapt_min_rows
    # rows, does not start a second adaptation within the parent's adapt_cooldown_s
    want += 1  # the request to "live" above
    wait_for(lambda: drift(http, child)["n_samples"] == want, 20, "that request fed")
    more = send(http, "live", X[: ARGS["adapt_min_rows"] + 20] + np.eye(len(names))[SHIFTED] * 4.0)
    want += len(more)
    wait_for(lambda: drift(http, child)["n_samples"] == want, 30, "child monitor fed again")
    time.sleep(3.0)  # an adaptation would be registered by now (a fit takes well under 1 s)
    assert len(drift(http, child)["history"]) == 1 and reg.resolve("live") == child


def prom(url: str, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def prom_value(url: str, query: str) -> float | None:
    res = prom(url, query)
    return float(res[0]["value"][1]) if res else None


def test_metrics_reach_prometheus(
    http: httpx.Client, prometheus: str, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    live = reg.resolve("live")
    parent = reg.lineage(live)[-1]
    names = reg.load(live).feature_schema().names
    before = drift(http, live)["n_samples"]
    n = len(send(http, "live", bundles[0][1][:40]))
    wait_for(lambda: drift(http, live)["n_samples"] == before + n, 20, "monitor caught up")

    def value(q: str) -> Callable[[], float | None]:
        return lambda: prom_value(prometheus, q)

    for version in (parent, live):  # the state counter saw exactly the rows the monitor saw
        rows = drift(http, version)["n_samples"]
        q = f'sum(ray_nhmm_state_total{{model_version="{version}"}})'
        wait_for(lambda q=q, rows=rows: prom_value(prometheus, q) == rows, 60, f"{q} == {rows}")
    lat = value(f'sum(ray_nhmm_infer_latency_ms_count{{model_version="{live}",form="batch"}})')
    assert wait_for(lat, 30, "latency histogram") >= 1
    q = f'ray_nhmm_drift_kl{{model_version="{parent}",feature="{names[SHIFTED]}"}}'
    kl = wait_for(value(q), 30, "per-feature KL")
    assert kl > 0.5
    assert prom_value(prometheus, f'ray_nhmm_drift_score{{model_version="{parent}"}}') >= kl
    assert prom_value(prometheus, f'ray_nhmm_adapting{{model_version="{parent}"}}') == 1.0
    fits = wait_for(
        value('sum(ray_nhmm_partial_fit_total{trigger="drift",accepted="true"})'), 30, "fits"
    )
    assert fits == 1.0
    assert prom_value(prometheus, "sum(ray_nhmm_partial_fit_duration_ms_count)") >= 2
    assert prom_value(prometheus, 'sum(ray_nhmm_adaptations_total{accepted="true"})') == 1.0
    info = wait_for(
        value(f'ray_nhmm_model_info{{alias="live",model_version="{live}"}}'), 30, "model info"
    )
    assert info == 1.0
    assert (
        prom_value(prometheus, f'ray_nhmm_model_info{{alias="live",model_version="{parent}"}}')
        == 0.0
    )
    assert prom_value(prometheus, 'sum(ray_nhmm_infer_requests_total{status="200"})') > 0


def test_train_starts_a_sweep_as_a_ray_job(http: httpx.Client, server: Server) -> None:
    r = http.post("/v1/train", json={"args": ["--help"]}, headers=AUTH)
    assert r.status_code == 200, r.text
    job = r.json()
    # the replica's own interpreter, by absolute path: no PATH lookup on the head
    assert job["entrypoint"] == f"{sys.executable} -m training.cli sweep --help"
    assert job["job_id"].startswith("raysubmit_")

    def finished() -> dict[str, Any] | None:
        s = http.get(f"/v1/train/{job['job_id']}", headers=AUTH).json()
        return s if s["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None

    done = wait_for(finished, 120, "the sweep job")
    assert done["status"] == "SUCCEEDED", done
    from ray.job_submission import JobSubmissionClient

    logs = JobSubmissionClient(server.dashboard).get_job_logs(job["job_id"])
    assert "Usage:" in logs and "sweep" in logs
    r = http.get("/v1/train/raysubmit_nosuchjob", headers=AUTH)
    assert r.status_code == 404 and r.json()["field"] == "job_id"
    r = http.post("/v1/train", json={"args": "--help"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["field"] == "args"
