"""HTTP statuses of the error kinds, and the FastAPI handlers that answer with them.

An error a request can cause is an :class:`~training.errors.NhmmError`; its class picks the
status (the most specific kind in its MRO wins), never its message. Every error body has the
same shape, ``{"detail": ..., "field": ...}``: ``detail`` says what, ``field`` names the input
(a 422 adds ``errors``, a 401 the ``WWW-Authenticate`` header). A body that is not JSON is a 400,
Starlette's own errors (405, 404 of an unknown path) keep their status in the same shape.
:func:`error_responses` documents them in the OpenAPI.
Light at import (no FastAPI): :class:`serving.model.InferenceError` takes its ``status`` from here.

>>> from training.artifacts.errors import NothingToRollBackError, UnknownModelError
>>> http_status(UnknownModelError("unknown model ref 'x'")), http_status(NothingToRollBackError("x"))
(404, 409)
>>> error_dict(UnknownModelError("unknown model ref 'x'"), field="model")
{'status': 404, 'field': 'model', 'detail': "unknown model ref 'x'"}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from training.errors import BadInputError
from training.errors import ConflictError
from training.errors import IntegrityError
from training.errors import NhmmError
from training.errors import NotFoundError
from training.errors import SchemaMismatchError
from training.errors import UnavailableError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

__all__ = [
    "STATUS_BY_KIND",
    "WWW_AUTHENTICATE",
    "PayloadTooLargeError",
    "UnauthorizedError",
    "error_dict",
    "error_response",
    "error_responses",
    "hidden",
    "http_status",
    "install_error_handlers",
    "naming",
]


class UnauthorizedError(NhmmError):
    """An admin route called without the right ``Authorization: Bearer <token>``."""

    def __init__(
        self,
        message: str = "admin token required (Authorization: Bearer ...)",
        *,
        field: str | None = "authorization",
    ) -> None:
        super().__init__(message, field=field)


#: The challenge every 401 carries (RFC 6750).
WWW_AUTHENTICATE = 'Bearer realm="nhmm-admin"'


class PayloadTooLargeError(BadInputError):
    """More items or rows in one request than the app accepts."""


#: The status of each error kind; :func:`http_status` takes the first found in the class's MRO.
STATUS_BY_KIND: dict[type[NhmmError], int] = {
    UnauthorizedError: 401,
    NotFoundError: 404,
    ConflictError: 409,
    IntegrityError: 409,  # a tampered or truncated bundle: not what was registered
    SchemaMismatchError: 409,  # features computed under another schema than the model's
    PayloadTooLargeError: 413,
    BadInputError: 422,
    UnavailableError: 503,
    NhmmError: 400,
}


def http_status(exc: NhmmError) -> int:
    """The HTTP status of ``exc``'s kind (its most specific class listed in STATUS_BY_KIND)."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_KIND.get(cls)
        if status is not None:
            return status
    return 500


def error_dict(exc: NhmmError, field: str | None = None) -> dict[str, Any]:
    """``exc`` as plain data (``status``, ``field``, ``detail``) for a reply across a Ray hop;
    ``field`` is used when the error names none."""
    return {"status": http_status(exc), "field": exc.field or field, "detail": str(exc)}


def error_response(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error body every route answers with (a 401 gets its ``WWW-Authenticate``, a 422
    its ``errors`` list)."""
    from starlette.responses import JSONResponse

    content: dict[str, Any] = {"detail": detail, "field": field}
    if status == 401:
        headers = {"WWW-Authenticate": WWW_AUTHENTICATE, **(headers or {})}
    elif status == 422:  # one shape for every 422, the schema's and the model's
        content["errors"] = [{"field": field or "body", "msg": detail}]
    return JSONResponse(status_code=status, content=content, headers=headers)


@contextlib.contextmanager
def naming(field: str, *, about: str | None = None, hide: str | None = None) -> Iterator[None]:
    """Let an :class:`NhmmError` raised inside that names no field name ``field``: the route's
    name for the input (``model`` in a body, ``version`` in a path). ``about`` prefixes the
    message of an integrity error, which names only the damaged file. ``hide`` (the registry
    root) is cut from the message: callers see what was wrong, not where the store lives."""
    try:
        yield
    except NhmmError as exc:
        if exc.field is None:
            exc.field = field
        if about is not None and isinstance(exc, IntegrityError):
            exc.message = f"{about}: {exc.message}"
        if hide:
            exc.message = hidden(exc.message, hide)
        raise


def hidden(message: str, secret: str) -> str:
    """``message`` with ``secret`` (a store path) replaced by ``<registry>``.

    >>> hidden("/srv/store/.locks/alias-live: lock held", "/srv/store")
    '<registry>/.locks/alias-live: lock held'
    """
    return message.replace(secret, "<registry>")


async def nhmm_error(request: Request, exc: NhmmError) -> JSONResponse:
    """The handler of every :class:`NhmmError`: status by class, ``detail`` and ``field``."""
    return error_response(http_status(exc), str(exc), exc.field)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (405 with ``Allow``, an unknown path) in the same body shape."""
    return error_response(exc.status_code, str(exc.detail), None, dict(exc.headers or {}))


def _loc_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request the schema refuses: 422 naming the first bad field (``items[1].features``);
    a body that is not JSON at all: 400."""
    from starlette.responses import JSONResponse

    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        why = (errors[0].get("ctx") or {}).get("error", "JSON decode error")
        return error_response(400, f"body: not valid JSON ({why})", "body")
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _loc_field(first.get("loc", ("body",)))
    return JSONResponse(
        status_code=422,
        content={
            "detail": f"{field}: {_msg(first)}",
            "field": field,
            "errors": [
                {"field": _loc_field(e.get("loc", ())), "msg": _msg(e)} for e in errors[:20]
            ],
        },
    )


_BOUNDS = {
    "less_than_equal": "<=",
    "greater_than_equal": ">=",
    "less_than": "<",
    "greater_than": ">",
}


def _msg(error: Mapping[str, Any]) -> str:
    """pydantic's message; a numeric bound with the number as given and the bound in ``%g``
    (pydantic spells ``1e30`` out in 31 digits).

    >>> _msg({"type": "less_than_equal", "msg": "x", "input": 1e39, "ctx": {"le": 1e30}})
    '1e+39 is not <= 1e+30'
    """
    op = _BOUNDS.get(str(error.get("type")))
    bound = next(iter((error.get("ctx") or {}).values()), None)
    if op is None or not isinstance(bound, (int, float)):
        return str(error.get("msg"))
    return f"{error.get('input')!r} is not {op} {bound:g}"


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`NhmmError`, request validation errors and Starlette's HTTP errors on
    ``app`` (call it before ``@serve.ingress(app)``, which freezes the app)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    app.add_exception_handler(NhmmError, nhmm_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]


#: What each error status means on this API (the OpenAPI descriptions).
MEANING: dict[int, str] = {
    400: "The body is not valid JSON.",
    401: "Admin route without the right `Authorization: Bearer <token>`; checked before the "
    "body is read.",
    404: "Unknown model, version, alias or job.",
    409: "Conflict: another feature schema, a tampered or missing bundle file, nothing to roll "
    "back, a job id in use.",
    413: "Too large: the body (`max_body_bytes`, refused before it is read), a batch "
    "(`max_batch`) or partial-fit rows (`max_fit_rows`).",
    422: "Input the schema or the model refuses; `field` names the first bad one "
    "(`items[1].features[5]`).",
    503: "A service this request needs did not answer (Ray job server, drift state).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's error statuses: the error body models, and the
    ``WWW-Authenticate`` header of a 401."""
    from serving.schemas import ErrorResponse
    from serving.schemas import ValidationErrorResponse

    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationErrorResponse if status == 422 else ErrorResponse
        out[status] = {"model": model, "description": MEANING[status]}
        if status == 401:
            out[status]["headers"] = {
                "WWW-Authenticate": {
                    "description": "The auth scheme: `Bearer`.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
    return out
