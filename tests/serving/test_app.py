"""The Serve application over real HTTP: inference parity, promote/rollback, bad input."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from ray import serve

from serving.model import InferenceModel
from serving.testing import local_serve
from tests.serve_setup import ServeHead
from training.artifacts.registry import Registry

APP = "nhmm"
V1 = "FEATURES_V1"


@pytest.fixture(scope="module")
def server(registry_root: Path, serve_head: ServeHead) -> Iterator[str]:
    args = {"max_batch": 16, "alias_ttl_s": 0.0}
    with local_serve(
        registry_root, args, address=serve_head.gcs_address, port=serve_head.port
    ) as url:
        yield url


@pytest.fixture(scope="module")
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30.0) as c:
        yield c


def whoami() -> dict[str, Any]:
    return serve.get_deployment_handle("Ingress", APP).whoami.remote().result()


def local_model(registry_root: Path, ref: str) -> InferenceModel:
    reg = Registry(registry_root)
    v = reg.resolve(ref)
    return InferenceModel(reg.load(v), version=v)


def chain(model: InferenceModel, X: np.ndarray) -> list[dict[str, Any]]:
    out, prev = [], None
    for x in X:
        r = model.infer(x.tolist(), prev, V1)
        prev = r.log_posterior
        out.append(r.to_dict())
    return out


def test_health_and_docs(http: httpx.Client, registry_root: Path) -> None:
    h = http.get("/healthz").json()
    assert h == {"status": "ok", "live": Registry(registry_root).resolve("live")}
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/infer", "/v1/models", "/v1/models/{version}/promote", "/healthz"} <= set(paths)


def test_infer_live_and_pinned_equal_in_process(
    http: httpx.Client, registry_root: Path, bundles
) -> None:
    X = bundles[0][1][:25]
    for ref in ("live", "candidate", "2"):
        expected = chain(local_model(registry_root, ref), X)
        prev = None
        for x, want in zip(X, expected, strict=True):
            body = {"schema_version": V1, "model": ref, "features": x.tolist()}
            if prev is not None:
                body["prev_log_posterior"] = prev
            r = http.post("/v1/infer", json=body)
            assert r.status_code == 200, r.text
            got = r.json()
            assert got == want  # exact: same code, floats survive JSON
            prev = got["log_posterior"]
    # batch form: each item carries its own previous posterior
    want = expected[:5]
    items = [{"features": X[0].tolist()}] + [
        {"features": X[i].tolist(), "prev_log_posterior": want[i - 1]["log_posterior"]}
        for i in range(1, 5)
    ]
    r = http.post("/v1/infer", json={"schema_version": V1, "model": "2", "items": items})
    assert r.status_code == 200, r.text
    assert r.json() == {"model_version": want[0]["model_version"], "results": want}


def test_models_listing(http: httpx.Client, registry_root: Path) -> None:
    body = http.get("/v1/models").json()
    reg = Registry(registry_root)
    assert body["aliases"] == reg.aliases()
    assert [v["version"] for v in body["versions"]] == [v.version for v in reg.versions()]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"schema_version": "FEATURES_V0", "features": [0.0] * 10}, 409, "schema_version"),
        ({"schema_version": V1, "features": [0.0] * 9}, 422, "features"),
        ({"schema_version": V1, "features": [0.0] * 9 + ["abc"]}, 422, "features[9]"),
        (
            {"schema_version": V1, "features": [0.0] * 10, "prev_log_posterior": [0.0]},
            422,
            "prev_log_posterior",
        ),
        ({"schema_version": V1, "model": "v0099-deadbeef", "features": [0.0] * 10}, 404, "model"),
        ({"schema_version": V1, "model": "nosuchalias", "features": [0.0] * 10}, 404, "model"),
        ({"schema_version": V1, "items": [{"features": [0.0] * 10}] * 17}, 413, "items"),
        (
            {"schema_version": V1, "items": [{"features": [0.0] * 10}, {"features": [1.0]}]},
            422,
            "items[1].features",
        ),
        ({"features": [0.0] * 10}, 422, "schema_version"),
    ],
)
def test_bad_input_status_and_field(http: httpx.Client, body, status, field) -> None:
    r = http.post("/v1/infer", json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_is_422_naming_the_element(http: httpx.Client, token: str) -> None:
    raw = f'{{"schema_version": "FEATURES_V1", "features": [0,0,0,{token},0,0,0,0,0,0]}}'
    r = http.post("/v1/infer", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "features[3]"


def test_promote_changes_live_without_restart_under_load(
    http: httpx.Client, server: str, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    v1, v2 = reg.resolve("live"), reg.resolve("candidate")
    before = whoami()
    x = bundles[0][1][3].tolist()
    body = {"schema_version": V1, "features": x}
    assert http.post("/v1/infer", json=body).json()["model_version"] == v1

    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server, timeout=30.0) as c:
            while not stop.is_set():
                r = c.post("/v1/infer", json=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    seen.add(r.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            r = http.post(f"/v1/models/{v2}/promote")
            assert r.status_code == 200 and r.json()["version"] == v2, r.text
            time.sleep(0.3)
            r = http.post("/v1/aliases/live/rollback")
            assert r.status_code == 200 and r.json()["version"] == v1, r.text
            time.sleep(0.3)
        r = http.post(f"/v1/models/{v2}/promote", json={"alias": "live"})
        assert r.json() == {"alias": "live", "version": v2, "previous": v1}
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert seen == {v1, v2}
    assert http.post("/v1/infer", json=body).json()["model_version"] == v2
    assert reg.resolve("live") == v2
    assert whoami() == before
    assert http.post("/v1/models/v0099-deadbeef/promote").status_code == 404


def malformed_payloads(n: int, seed: int = 7) -> list[Any]:
    """Seeded generator of broken /v1/infer bodies (types, lengths, values, structure)."""
    rng = random.Random(seed)
    junk: list[Any] = [None, True, "x", "", 1e308, -0.0, [], {}, [[1.0]], {"a": 1}, 10**400, "NaN"]
    out: list[Any] = []
    for i in range(n):
        features: Any = [rng.uniform(-5, 5) for _ in range(10)]
        body: dict[str, Any] = {"schema_version": V1, "features": features}
        kind = i % 10
        if kind == 0:
            features[rng.randrange(10)] = rng.choice(junk)
        elif kind == 1:
            body["features"] = features[: rng.randrange(0, 10)] or rng.choice(junk)
        elif kind == 2:
            body["features"] = features + [0.0] * rng.randint(1, 50)
        elif kind == 3:
            body["schema_version"] = rng.choice([*junk, "FEATURES_V2", "features_v1"])
        elif kind == 4:
            body["prev_log_posterior"] = rng.choice(
                [[0.0] * rng.randint(0, 6), [rng.uniform(-1e6, 1e6) for _ in range(3)], "p", 3]
            )
        elif kind == 5:
            body["model"] = rng.choice(["", "../../etc", "v0", "live/../x", "x" * 100, "0", 5])
        elif kind == 6:
            body = rng.choice([*junk, [body], "{"])
        elif kind == 7:
            del body["features"]
            body["items"] = rng.choice([[], [{"features": features}] * 40, [{}], "x", [None]])
        elif kind == 8:
            body[rng.choice(["extra", "Features", "item"])] = rng.choice(junk)
        else:
            del body[rng.choice(["schema_version", "features"])]
        out.append(body)
    return out


def test_fuzz_malformed_payloads_no_5xx_no_restart(http: httpx.Client) -> None:
    before = whoami()
    statuses: dict[int, int] = {}
    for body in malformed_payloads(240):
        r = http.post("/v1/infer", json=body)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (body, r.text)
    raw = [b"{", b"", b"\xff\xfe", b'{"schema_version": "FEATURES_V1", "features": [1e999]}']
    for content in raw:
        r = http.post("/v1/infer", content=content, headers={"content-type": "application/json"})
        assert r.status_code in (400, 422), r.text
    assert 200 not in statuses or statuses[200] < 30
    assert {404, 409, 413, 422} <= set(statuses)
    assert whoami() == before


def settled_drift_count(http: httpx.Client, quiet_s: float = 2.0) -> int:
    """The live monitor's sample count once it stops moving for ``quiet_s`` (eight of the
    ingress's 0.25 s drift flushes): a baseline no earlier request can still add to."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + 30.0
    while time.monotonic() < deadline:
        n = http.get("/v1/drift", params={"model": "live"}).json()["n_samples"]
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return n
        time.sleep(0.1)
    raise AssertionError(f"the drift monitor's count never settled (last {last})")


def test_drift_report_is_fed_by_served_traffic(
    http: httpx.Client, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    live = reg.resolve("live")
    before = settled_drift_count(http)  # earlier tests' traffic may still be on its way
    x = (bundles[0][1][7] + 5.0).tolist()  # one vector far from the training histograms
    for _ in range(16):
        items = [{"features": x}] * 16
        r = http.post("/v1/infer", json={"schema_version": V1, "items": items})
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20.0
    while True:  # the ingress feeds the drift monitor asynchronously, in batches
        r = http.get("/v1/drift", params={"model": "live"})
        assert r.status_code == 200, r.text
        body = r.json()
        if body["n_samples"] >= before + 256 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body["model_version"] == live and body["n_samples"] == before + 256
    assert set(body["kl"]) == set(reg.load(live).feature_schema().names)
    assert all(np.isfinite(v) and v >= 0 for v in body["kl"].values())
    assert body["max_kl"] > 1.0 and len(body["drifted"]) >= 5
    assert body["drift"] == body["max_kl"] and body["adapting"] and not body["auto_adapt"]
    assert body["history"] == []  # auto_adapt is off: nothing refits behind our back
    # later results carry the monitor's view: adapting, drift score, scaled confidence
    r = http.post("/v1/infer", json={"schema_version": V1, "features": x}).json()
    raw = local_model(registry_root, live).infer(x, None, V1)
    assert r["adapting"] is True and r["drift"] > 1.0
    assert r["confidence"] == raw.confidence * 0.5 and r["posterior"] == raw.posterior
    assert http.get("/v1/drift", params={"model": "nosuch"}).status_code == 404


def test_partial_fit_registers_a_child_with_lineage(
    http: httpx.Client, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    live = reg.resolve("live")
    n_before = len(reg.versions())
    X = bundles[1][1][:400] if live.startswith("v0002") else bundles[0][1][:400]
    body = {"schema_version": V1, "model": "live", "X": X.tolist(), "alias": "candidate"}
    r = http.post("/v1/partial_fit", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["parent"] == live and out["n_samples"] == 400
    assert out["accepted"], out["reason"]
    guard = out["guard"]  # the guard's whole account, as the registry keeps it
    assert guard["accepted"] and guard["n_samples"] == 400
    assert guard["policy_agreement"] is not None and 0.0 <= guard["policy_agreement"] <= 1.0
    assert guard["heldout_ll_before"] == pytest.approx(out["heldout_ll_before"])
    child = out["version"]
    assert reg.resolve("candidate") == child and reg.resolve("live") == live  # live untouched
    assert reg.lineage(child) == [child, live] and len(reg.versions()) == n_before + 1
    assert not reg.load(child).hmm_params().equals(reg.load(live).hmm_params())
    r = http.post(
        "/v1/infer", json={"schema_version": V1, "model": child, "features": X[0].tolist()}
    )
    assert r.status_code == 200 and r.json()["model_version"] == child

    bad = {**body, "X": [row[:9] for row in body["X"]]}
    r = http.post("/v1/partial_fit", json=bad)
    assert r.status_code == 422 and r.json()["field"] == "X[0]"
    r = http.post("/v1/partial_fit", json={**body, "schema_version": "FEATURES_V0"})
    assert r.status_code == 409
    assert len(reg.versions()) == n_before + 1  # refused requests register nothing


@pytest.mark.parametrize("value", [1e39, 3.3e38, -2e30, 1e300])
def test_feature_outside_the_models_range_is_422_naming_it(
    http: httpx.Client, value: float
) -> None:
    """Finite JSON numbers past the limit (float32 overflow in the policy head at 3.4e38)."""
    features = [0.0] * 10
    features[5] = value
    r = http.post("/v1/infer", json={"schema_version": V1, "features": features})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "features[5]"
    items = [{"features": [0.0] * 10}, {"features": features}]
    r = http.post("/v1/infer", json={"schema_version": V1, "items": items})
    assert r.status_code == 422 and r.json()["field"] == "items[1].features[5]", r.text


def test_feature_at_the_limit_is_answered(http: httpx.Client) -> None:
    features = [0.0] * 10
    features[5] = 1e30
    r = http.post("/v1/infer", json={"schema_version": V1, "features": features})
    assert r.status_code == 200, r.text
    assert all(np.isfinite(r.json()["posterior"])) and np.isfinite(r.json()["loglik"])


def test_partial_fit_rows_the_model_cannot_score_are_422(
    http: httpx.Client, registry_root: Path, bundles
) -> None:
    reg = Registry(registry_root)
    n = len(reg.versions())
    X = bundles[0][1][:12].tolist()
    X[3][5] = 1e300  # used to reach online EM: "zero likelihood under every state" -> 500
    r = http.post("/v1/partial_fit", json={"schema_version": V1, "X": X})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "X[3][5]"
    assert len(reg.versions()) == n


def test_unparseable_body_is_400_in_the_error_shape(http: httpx.Client) -> None:
    for raw in (b"{", b'{"schema_version": "FEATURES_V1",', b"\xff\xfe"):
        r = http.post("/v1/infer", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "body" and r.json()["detail"].startswith("body: ")
