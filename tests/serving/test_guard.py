"""RequestGuard in front of a FastAPI app with the Serve app's error handlers: auth before the
body is read, the body cap before it is parsed, and the error shapes (400, 401, 405, 413)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from serving.deployments._guard import ADMIN_TAG
from serving.deployments._guard import GuardSettings
from serving.deployments._guard import RequestGuard
from serving.errors import WWW_AUTHENTICATE
from serving.errors import install_error_handlers

TOKEN = "t0ken"
LIMIT = 4096
JSON = {"content-type": "application/json"}


class Body(BaseModel):
    x: list[float]


def make_client(token: str | None) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestGuard, settings=lambda: GuardSettings(token, LIMIT))
    seen: list[int] = []

    @app.post("/open")
    async def open_route(b: Body) -> dict[str, int]:
        seen.append(len(b.x))
        return {"n": len(b.x)}

    @app.post("/admin/{name}", tags=[ADMIN_TAG])
    async def admin_route(name: str, b: Body) -> dict[str, int]:
        seen.append(len(b.x))
        return {"n": len(b.x)}

    router = APIRouter()  # Serve's ingress re-mounts class routes with include_router

    @router.post("/included/{name}", tags=[ADMIN_TAG])
    async def included_admin_route(name: str, b: Body) -> dict[str, int]:
        seen.append(len(b.x))
        return {"n": len(b.x)}

    app.include_router(router)
    client = TestClient(app, raise_server_exceptions=False)
    client.seen = seen  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client(TOKEN) as c:
        yield c


@pytest.mark.parametrize("path", ["/admin/a", "/included/a"])
@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong", f"bearer {TOKEN}", TOKEN, f"Bearer {TOKEN} "]
)
def test_admin_route_refused_before_the_body_is_validated(
    client: TestClient, auth: str | None, path: str
) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    r = client.post(path, json={"x": "not a list", "extra": 1}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == WWW_AUTHENTICATE
    assert r.json() == {
        "detail": "admin token required (Authorization: Bearer ...)",
        "field": "authorization",
    }
    r = client.post(path, content=b"{", headers={**headers, **JSON})
    assert r.status_code == 401
    assert client.seen == []  # type: ignore[attr-defined]


def test_admin_route_with_the_token_and_open_routes(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/admin/a", json={"x": [1.0]}, headers=auth).json() == {"n": 1}
    assert client.post("/included/a", json={"x": [1.0]}, headers=auth).json() == {"n": 1}
    assert client.post("/open", json={"x": [1.0, 2.0]}).json() == {"n": 2}
    r = client.post("/admin/a", json={"x": "no"}, headers=auth)  # with the token: field details
    assert r.status_code == 422 and r.json()["field"] == "x"
    assert client.get("/admin/a", headers={}).status_code == 405  # not the admin route's method


def test_no_token_configured_leaves_admin_routes_open() -> None:
    with make_client(None) as c:
        assert c.post("/admin/a", json={"x": []}).json() == {"n": 0}


def test_declared_body_over_the_cap_is_413_unread(client: TestClient) -> None:
    body = b'{"x": [' + b"1.0," * LIMIT + b"1.0]}"
    r = client.post("/open", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {
        "detail": f"body: larger than max_body_bytes ({LIMIT} bytes)",
        "field": "body",
    }
    assert client.seen == []  # type: ignore[attr-defined]


def test_streamed_body_over_the_cap_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"x": ['
        for _ in range(LIMIT // 64 + 2):
            yield b"1.0," * 16

    r = client.post("/open", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"
    ok = client.post("/open", content=iter([b'{"x": [', b"1.0]}"]), headers=JSON)
    assert ok.status_code == 200 and ok.json() == {"n": 1}


def test_unparseable_body_is_400_and_wrong_method_405(client: TestClient) -> None:
    for raw in (b"{", b"[1,", b'{"x": [1.0]'):
        r = client.post("/open", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "body" and r.json()["detail"].startswith("body: not valid JSON")
    r = client.put("/open", json={"x": []})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json() == {"detail": "Method Not Allowed", "field": None}
