"""The app's OpenAPI document states what the app does: every status a route answers has its
body model, and a request body the schema accepts is one the app accepts (and the reverse).

The property-based fuzzer checks the same against a running deployment
(``test_serve_deploy.py``); these read the document itself, without a server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from pydantic import ValidationError

from serving.deployments._guard import ADMIN_TAG
from serving.deployments.ingress import api
from serving.model import VALUE_LIMIT
from serving.schemas import InferRequest
from serving.schemas import PartialFitRequest
from serving.schemas import PromoteRequest

SPEC: dict[str, Any] = api.openapi()
V1 = "FEATURES_V1"
ROW = [0.0] * 10


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in SPEC["paths"].items() for m, op in ops.items()]


def ref(response: dict[str, Any]) -> str:
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]


def test_every_error_status_has_the_apps_body_model() -> None:
    for method, path, op in operations():
        for status, response in op["responses"].items():
            if status == "200" or path in ("/healthz", "/livez"):
                continue
            want = "ValidationErrorResponse" if status == "422" else "ErrorResponse"
            assert ref(response) == want, (method, path, status)
    assert "HTTPValidationError" not in SPEC["components"]["schemas"]  # FastAPI's list shape
    body = SPEC["components"]["schemas"]["ValidationErrorResponse"]
    assert set(body["required"]) == {"detail", "field", "errors"}
    health = SPEC["paths"]["/healthz"]["get"]["responses"]
    assert ref(health["503"]) == ref(health["200"]) == "HealthResponse"


def test_statuses_each_route_answers_are_documented() -> None:
    documented = {(m, p): set(op["responses"]) for m, p, op in operations()}
    body_posts = {
        ("POST", "/v1/infer"),
        ("POST", "/v1/models/{version}/promote"),
        ("POST", "/v1/partial_fit"),
        ("POST", "/v1/train"),
    }
    for key in body_posts:  # JSON bodies: 400 unparseable, 413 too large, 422 refused
        assert {"400", "413", "422"} <= documented[key], key
    assert {"404", "409", "503"} <= documented[("POST", "/v1/infer")]
    for key in [("POST", "/v1/models/{version}/promote"), ("POST", "/v1/partial_fit")]:
        assert {"404", "409"} <= documented[key], key
    assert {"404", "409", "413"} <= documented[("POST", "/v1/aliases/{alias}/rollback")]
    assert {"404", "503"} <= documented[("GET", "/v1/drift")]
    assert {"409", "503"} <= documented[("POST", "/v1/train")]
    assert {"404", "503"} <= documented[("GET", "/v1/train/{job_id}")]
    assert documented[("GET", "/healthz")] == {"200", "503"}


def test_admin_routes_declare_bearer_auth_and_the_401_challenge() -> None:
    admin = {(m, p) for m, p, op in operations() if ADMIN_TAG in op.get("tags", [])}
    assert admin == {
        ("POST", "/v1/models/{version}/promote"),
        ("POST", "/v1/aliases/{alias}/rollback"),
        ("POST", "/v1/partial_fit"),
        ("POST", "/v1/train"),
        ("GET", "/v1/train/{job_id}"),
    }
    scheme = SPEC["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": "The admin token."}
    for method, path, op in operations():
        if (method, path) in admin:
            assert op["security"] == [{"HTTPBearer": []}]
            header = op["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert header["required"] is True
        else:
            assert "401" not in op["responses"] and "security" not in op


def validator(model: type[BaseModel]) -> Draft202012Validator:
    name = model.__name__
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **SPEC})


def app_accepts(model: type[BaseModel], body: Any) -> bool:
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


INFER_BODIES: list[tuple[dict[str, Any], bool]] = [
    ({"schema_version": V1, "features": ROW}, True),
    ({"schema_version": V1, "items": [{"features": ROW}]}, True),
    ({"schema_version": V1, "features": ROW, "prev_log_posterior": [0.0, -1.0, -2.0]}, True),
    ({"schema_version": V1, "items": [{"features": ROW}], "prev_log_posterior": None}, True),
    ({"schema_version": V1, "features": ROW, "model": "v0003-1a2b3c4d"}, True),
    ({"schema_version": V1, "features": ROW, "model": "7"}, True),
    ({"schema_version": V1, "features": [VALUE_LIMIT, -VALUE_LIMIT]}, True),
    ({"schema_version": V1}, False),  # neither form
    ({"schema_version": V1, "features": ROW, "items": [{"features": ROW}]}, False),  # both
    ({"schema_version": V1, "features": None, "items": [{"features": ROW}]}, False),
    ({"schema_version": V1, "items": [{"features": ROW}], "prev_log_posterior": [0.0]}, False),
    ({"schema_version": V1, "items": []}, False),
    ({"schema_version": V1, "features": []}, False),
    ({"schema_version": V1, "features": [1e39]}, False),  # float32 overflow
    ({"schema_version": V1, "features": [-1.01e30]}, False),
    ({"schema_version": V1, "features": [True]}, False),
    ({"schema_version": V1, "features": ["1"]}, False),
    ({"schema_version": V1, "features": ROW, "model": "../etc"}, False),
    ({"schema_version": V1, "features": ROW, "model": ""}, False),
    ({"schema_version": V1, "features": ROW, "extra": 1}, False),
    ({"schema_version": "", "features": ROW}, False),
]


@pytest.mark.parametrize(("body", "ok"), INFER_BODIES)
def test_infer_schema_and_app_agree(body: dict[str, Any], ok: bool) -> None:
    assert validator(InferRequest).is_valid(body) is ok
    assert app_accepts(InferRequest, body) is ok


@pytest.mark.parametrize(
    ("alias", "ok"),
    [("live", True), ("canary-2", True), ("a_b", True), ("v7x", True), ("v7", False),
     ("7", False), ("Live", False), ("-x", False), ("", False), ("a" * 65, False)],
)  # fmt: skip
def test_alias_naming_rule_is_in_the_schema(alias: str, ok: bool) -> None:
    assert validator(PromoteRequest).is_valid({"alias": alias}) is ok
    assert app_accepts(PromoteRequest, {"alias": alias}) is ok
    fit = {"schema_version": V1, "X": [ROW] * 10, "alias": alias}
    assert validator(PartialFitRequest).is_valid(fit) is ok
    assert app_accepts(PartialFitRequest, fit) is ok
    (param,) = SPEC["paths"]["/v1/aliases/{alias}/rollback"]["post"]["parameters"]
    assert Draft202012Validator(param["schema"]).is_valid(alias) is ok


@pytest.mark.parametrize(
    ("X", "ok"),
    [([ROW] * 10, True), ([ROW] * 9, False), ([ROW] * 9 + [[1e300] * 10], False),
     ([ROW] * 9 + [[]], False), ([ROW] * 9 + [[float(VALUE_LIMIT)] * 10], True)],
)  # fmt: skip
def test_partial_fit_rows_bounds_are_in_the_schema(X: list[list[float]], ok: bool) -> None:
    body = {"schema_version": V1, "X": X}
    assert validator(PartialFitRequest).is_valid(body) is ok
    assert app_accepts(PartialFitRequest, body) is ok
