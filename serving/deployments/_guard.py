"""The ingress's edge: admin auth and the body size cap, checked before the app reads anything.

:class:`RequestGuard` is ASGI middleware in front of the FastAPI app. A route tagged ``admin``
answers 401 (with ``WWW-Authenticate``) unless ``Authorization: Bearer <token>`` matches, so a
caller without the token learns nothing about the body's fields. A request body over
``max_body_bytes`` is 413: at once when its ``Content-Length`` says so, else as soon as the
streamed bytes pass the cap. Only then does FastAPI parse and validate the body.

>>> GuardSettings(admin_token=None, max_body_bytes=1024).max_body_bytes
1024
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp
from starlette.types import Message
from starlette.types import Receive
from starlette.types import Scope
from starlette.types import Send

from serving.errors import UnauthorizedError
from serving.errors import error_response

__all__ = ["ADMIN_TAG", "GuardSettings", "RequestGuard"]

#: The OpenAPI tag that makes a route admin-only.
ADMIN_TAG = "admin"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class GuardSettings:
    """The admin token (``None``: admin routes are open) and the largest body accepted."""

    admin_token: str | None
    max_body_bytes: int


class RequestGuard:
    """ASGI middleware: admin auth, then the body cap, then the app (see the module doc).

    ``settings`` is called per request: in a Serve replica it reads the replica's own
    :class:`GuardSettings`, which exist only once the deployment is constructed.
    """

    def __init__(self, app: ASGIApp, settings: Callable[[], GuardSettings]) -> None:
        self.app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self._settings()
        if settings.admin_token and _is_admin(scope) and not _authorized(scope, settings):
            exc = UnauthorizedError()
            await error_response(401, str(exc), exc.field)(scope, receive, send)
            return
        if scope["method"] in _BODY_METHODS:
            body = await _read_capped(scope, receive, settings.max_body_bytes)
            if body is None:
                detail = f"body: larger than max_body_bytes ({settings.max_body_bytes} bytes)"
                await error_response(413, detail, "body")(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


def _is_admin(scope: Scope) -> bool:
    """Whether the route ``scope`` reaches is tagged :data:`ADMIN_TAG`."""
    for route in _routes(scope.get("app")):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return ADMIN_TAG in (getattr(route, "tags", None) or ())
    return False


def _routes(router: Any) -> Iterator[Any]:
    """Every route under ``router``, through included routers (FastAPI >= 0.137 keeps an
    ``include_router`` as one node holding ``original_router``; Serve's ingress makes one)."""
    for route in getattr(router, "routes", ()):
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner)
        else:
            yield route


def _authorized(scope: Scope, settings: GuardSettings) -> bool:
    expected = f"Bearer {settings.admin_token}".encode()
    given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    return hmac.compare_digest(given, expected)


async def _read_capped(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or ``None`` once it is known to exceed ``limit`` bytes."""
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: the app sees it next
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then the real channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
