"""HTTP statuses of the error kinds, and the FastAPI handlers that answer with them.

An error a request can cause is an :class:`~training.errors.NhmmError`; its class picks the
status (the most specific kind in its MRO wins), never its message. Every error body has the
same shape, ``{"detail": ..., "field": ...}``: ``detail`` says what, ``field`` names the input.
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
    from starlette.responses import JSONResponse

__all__ = [
    "STATUS_BY_KIND",
    "PayloadTooLargeError",
    "UnauthorizedError",
    "error_dict",
    "error_response",
    "http_status",
    "install_error_handlers",
    "naming",
]


class UnauthorizedError(NhmmError):
    """An admin route called without the right ``Authorization: Bearer <token>``."""


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


def error_response(status: int, detail: str, field: str | None = None) -> JSONResponse:
    """The error body every route answers with."""
    from starlette.responses import JSONResponse

    return JSONResponse(status_code=status, content={"detail": detail, "field": field})


@contextlib.contextmanager
def naming(field: str, *, about: str | None = None) -> Iterator[None]:
    """Let an :class:`NhmmError` raised inside that names no field name ``field``: the route's
    name for the input (``model`` in a body, ``version`` in a path). ``about`` prefixes the
    message of an integrity error, which names only the damaged file."""
    try:
        yield
    except NhmmError as exc:
        if exc.field is None:
            exc.field = field
        if about is not None and isinstance(exc, IntegrityError):
            exc.message = f"{about}: {exc.message}"
        raise


async def nhmm_error(request: Request, exc: NhmmError) -> JSONResponse:
    """The handler of every :class:`NhmmError`: status by class, ``detail`` and ``field``."""
    return error_response(http_status(exc), str(exc), exc.field)


def _loc_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body FastAPI could not parse: 422 naming the first bad field (``items[1].features``)."""
    from starlette.responses import JSONResponse

    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _loc_field(first.get("loc", ("body",)))
    return JSONResponse(
        status_code=422,
        content={
            "detail": f"{field}: {first.get('msg')}",
            "field": field,
            "errors": [
                {"field": _loc_field(e.get("loc", ())), "msg": str(e.get("msg"))}
                for e in errors[:20]
            ],
        },
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`NhmmError` and request validation errors on ``app`` (call it before
    ``@serve.ingress(app)``, which freezes the app)."""
    from fastapi.exceptions import RequestValidationError

    app.add_exception_handler(NhmmError, nhmm_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)
