"""Error kinds → HTTP status, by class: the one mapping and the FastAPI handlers that use it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from serving.drift import NoDriftReferenceError
from serving.errors import PayloadTooLargeError
from serving.errors import UnauthorizedError
from serving.errors import error_dict
from serving.errors import http_status
from serving.errors import install_error_handlers
from serving.errors import naming
from serving.model import InferenceError
from serving.model import InvalidInput
from serving.model import SchemaVersionMismatch
from training.artifacts.errors import BadAliasError
from training.artifacts.errors import BadRootError
from training.artifacts.errors import BundleEncodeError
from training.artifacts.errors import BundleExistsError
from training.artifacts.errors import BundleIntegrityError
from training.artifacts.errors import LockTimeoutError
from training.artifacts.errors import NothingToRollBackError
from training.artifacts.errors import SchemaVersionError
from training.artifacts.errors import UnknownModelError
from training.artifacts.errors import VersionExistsError
from training.errors import BadInputError
from training.errors import ConflictError
from training.errors import IntegrityError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import SchemaMismatchError
from training.errors import UnavailableError

KINDS: list[tuple[NhmmError, int]] = [
    (NotFoundError("x"), 404),
    (ConflictError("x"), 409),
    (IntegrityError("x"), 409),
    (SchemaMismatchError("x"), 409),
    (BadInputError("x"), 422),
    (UnavailableError("x"), 503),
    (NhmmError("x"), 400),
    (UnknownModelError("unknown model ref 'x'"), 404),
    (VersionExistsError("x"), 409),
    (NothingToRollBackError("x"), 409),
    (LockTimeoutError("x"), 409),
    (BadAliasError("x", field="alias"), 422),
    (BadRootError("x"), 422),
    (BundleIntegrityError("hmm.npz: SHA-256 does not match"), 409),
    (BundleExistsError("x"), 409),
    (BundleEncodeError("x"), 422),
    (SchemaVersionError("x"), 409),
    (SchemaVersionMismatch("schema_version", "x"), 409),
    (InvalidInput("features", "x"), 422),
    (InferenceError("X", "x"), 422),
    (NoDriftReferenceError("x"), 404),
    (UnauthorizedError("x", field="authorization"), 401),
    (PayloadTooLargeError("x", field="items"), 413),
]


@pytest.mark.parametrize(("exc", "status"), KINDS, ids=[type(e).__name__ for e, _ in KINDS])
def test_each_kind_has_its_status(exc: NhmmError, status: int) -> None:
    assert http_status(exc) == status
    assert error_dict(exc, field="model") == {
        "status": status,
        "field": exc.field or "model",
        "detail": str(exc),
    }


def test_inference_errors_carry_the_status_of_their_class() -> None:
    assert SchemaVersionMismatch("schema_version", "v0").status == 409
    assert InvalidInput("features", "short").status == 422
    assert str(InvalidInput("features[3]", "not finite")) == "features[3]: not finite"


class Body(BaseModel):
    x: list[float]


@pytest.fixture(scope="module")
def client() -> TestClient:
    """A FastAPI app whose routes raise each kind, with the Serve app's handlers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{i}")
    async def raise_kind(i: int) -> None:
        raise KINDS[i][0]

    @app.get("/named")
    async def named() -> None:
        with naming("version", about="version v7"):
            raise BundleIntegrityError("hmm.npz: SHA-256 does not match manifest.json")

    @app.get("/unknown")
    async def unknown() -> None:
        with naming("model", about="model v9"):
            raise UnknownModelError("unknown model ref 'v9'")

    @app.post("/body")
    async def body(b: Body) -> None:
        return None

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("i", range(len(KINDS)), ids=[type(e).__name__ for e, _ in KINDS])
def test_handler_answers_status_and_body_by_class(client: TestClient, i: int) -> None:
    exc, status = KINDS[i]
    r = client.get(f"/raise/{i}")
    assert r.status_code == status
    body = {"detail": str(exc), "field": exc.field}
    if status == 422:  # every 422 has the documented ValidationErrorResponse shape
        body["errors"] = [{"field": exc.field or "body", "msg": str(exc)}]
    assert r.json() == body
    assert ("www-authenticate" in r.headers) == (status == 401)


def test_naming_fills_the_field_and_names_the_damaged_model(client: TestClient) -> None:
    r = client.get("/named")
    assert r.status_code == 409
    assert r.json() == {
        "detail": "version v7: hmm.npz: SHA-256 does not match manifest.json",
        "field": "version",
    }
    r = client.get("/unknown")  # not an integrity error: the message already names the ref
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown model ref 'v9'", "field": "model"}


def test_validation_errors_name_the_first_bad_field(client: TestClient) -> None:
    r = client.post("/body", json={"x": [0.0, "abc"]})
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == "x[1]" and body["detail"].startswith("x[1]: ")
    assert body["errors"][0]["field"] == "x[1]"


def test_other_exceptions_are_not_user_errors() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/bug")
    async def bug() -> None:
        raise KeyError("a bug, not a missing model")

    r = TestClient(app, raise_server_exceptions=False).get("/bug")
    assert r.status_code == 500
