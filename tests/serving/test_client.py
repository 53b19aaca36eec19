"""Model clients: HTTP and in-process give the same results and never raise."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.client import ClientResult
from serving.client import HttpModelClient
from serving.client import InProcessModelClient
from serving.client import ModelClient
from serving.testing import local_serve
from tests.serve_setup import ServeHead
from training.artifacts.registry import Registry

V1 = "FEATURES_V1"


@pytest.fixture(scope="module")
def server(registry_root: Path, serve_head: ServeHead) -> Iterator[str]:
    with local_serve(
        registry_root, {}, address=serve_head.gcs_address, port=serve_head.port
    ) as url:
        yield url


def run_chain(client: ModelClient, X, use_async: bool = False) -> list[ClientResult]:
    out, prev = [], None
    for x in X:
        r = asyncio.run(client.ainfer(x, prev, V1)) if use_async else client.infer(x, prev, V1)
        assert r.status in ("ok", "timeout"), r.error
        prev = r.result.log_posterior
        out.append(r)
    return out


def test_http_equals_in_process_sync_and_async(server: str, registry_root: Path, bundles) -> None:
    X = bundles[1][1][:20]
    local = InProcessModelClient("live", registry=str(registry_root))
    http = HttpModelClient(server, budget_ms=5000.0)
    try:
        want = [r.result for r in run_chain(local, X)]
        assert [r.result for r in run_chain(http, X)] == want
        assert [r.result for r in run_chain(http, X, use_async=True)] == want
    finally:
        http.close()
    assert want[0].model_version == Registry(registry_root).resolve("live")
    pinned = InProcessModelClient(bundles[0][0])
    assert pinned.infer(X[0], None, V1).result.posterior == want[0].posterior


def test_errors_are_results_not_exceptions(server: str, registry_root: Path, bundles) -> None:
    x = bundles[0][1][0]
    http = HttpModelClient(server, budget_ms=5000.0, model="v0042-00000000")
    local = InProcessModelClient("live", registry=str(registry_root))
    try:
        r = http.infer(x, None, V1)
        assert (r.status, r.result) == ("error", None) and r.error.startswith("HTTP 404")
        http.model = "live"
        r = http.infer(x, None, "FEATURES_V0")
        assert (
            r.status == "error" and r.error.startswith("HTTP 409") and "schema_version" in r.error
        )
        r = http.infer(list(x[:3]), None, V1)
        assert r.status == "error" and "HTTP 422" in r.error and "features" in r.error
        r = http.infer(["a"] * 10, None, V1)
        assert r.status == "error" and r.error.startswith("request:")
        r = local.infer(list(x[:3]), None, V1)
        assert r.status == "error" and r.error.startswith("HTTP 422: features")
        r = local.infer(x, None, "FEATURES_V0")
        assert r.status == "error" and r.error.startswith("HTTP 409")
    finally:
        http.close()


def test_unreachable_and_silent_servers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = HttpModelClient(f"http://127.0.0.1:{port}", budget_ms=500.0)
    r = refused.infer([0.0] * 10, None, V1)
    assert r.status == "error" and r.result is None and "Connect" in r.error
    refused.close()

    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = HttpModelClient(url, budget_ms=60.0)
        try:
            r = client.infer([0.0] * 10, None, V1)
            assert r.status == "timeout" and r.result is None
            assert 50.0 <= r.latency_ms < 2000.0
            r = asyncio.run(client.ainfer([0.0] * 10, None, V1))
            assert r.status == "timeout" and r.result is None
            assert 50.0 <= r.latency_ms < 2000.0
        finally:
            client.close()


def test_in_process_budget_marks_late_answers(bundles) -> None:
    client = InProcessModelClient(bundles[0][0], budget_ms=1e-9)
    r = client.infer(bundles[0][1][0], None, V1)
    assert r.status == "timeout" and r.result is not None and r.latency_ms > 0
    with pytest.raises(ValueError, match="budget_ms"):
        HttpModelClient("http://127.0.0.1:1", budget_ms=0)


def test_in_process_client_names_its_version_and_schema(registry_root: Path, bundles) -> None:
    """The strategy builds its feature feed from ``schema`` and logs ``version``."""
    reg = Registry(registry_root)
    client = InProcessModelClient("candidate", registry=reg)
    assert client.version == reg.resolve("candidate")
    assert client.schema == bundles[1][0].feature_schema()
    assert client.schema.version == V1 and len(client.schema.names) == 10
    assert client.infer(bundles[1][1][0], None, client.schema.version).result.model_version == (
        client.version
    )
    assert InProcessModelClient(bundles[0][0]).version.startswith("local-")
