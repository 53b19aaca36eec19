"""A minimal Binance wire client for protocol tests: signs queries like the adapter does
(``urlencode`` of the params, ``&signature=`` last; HMAC hex or Ed25519 base64)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
from cryptography.hazmat.primitives import serialization

from node.venue import ApiKey
from node.venue import LoopbackVenue
from node.venue import VenueConfig
from node.venue import generate_ed25519
from node.venue.auth import sign_hmac
from node.venue.recording import Recording

HMAC_SECRET = "test-hmac-secret-0123456789"


def sign(secret: str, payload: str) -> str:
    """The adapter's signature: HMAC-SHA256 hex, or Ed25519 (PEM secret) base64."""
    if secret.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(secret.encode(), password=None)
        return base64.b64encode(key.sign(payload.encode())).decode()  # type: ignore[union-attr,call-arg]
    return sign_hmac(secret, payload)


def signed_query(secret: str, params: dict[str, Any], ts: int | None = None) -> str:
    params = dict(params, timestamp=ts if ts is not None else int(time.time() * 1000))
    payload = urlencode(params)
    return f"{payload}&{urlencode({'signature': sign(secret, payload)})}"


def keys(kind: str) -> tuple[ApiKey, str]:
    """(venue key, client secret) for ``hmac`` or ``ed25519``."""
    if kind == "hmac":
        return ApiKey.hmac("test-key", HMAC_SECRET), HMAC_SECRET
    return generate_ed25519("test-key")


class Wire:
    """REST and WebSocket access to one venue, as the account holder."""

    def __init__(self, venue: LoopbackVenue, session: aiohttp.ClientSession, secret: str) -> None:
        assert venue.urls is not None
        self.venue, self.session, self.secret = venue, session, secret
        self.urls = venue.urls
        self.key = venue.api_key.key

    async def call(
        self, method: str, path: str, params: dict[str, Any] | None = None, *, signed: bool = True,
        headers: dict[str, str] | None = None, ts: int | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        query = signed_query(self.secret, params or {}, ts) if signed else urlencode(params or {})
        hdrs = {"X-MBX-APIKEY": self.key} if headers is None else headers
        url = f"{self.urls.http}{path}" + (f"?{query}" if query else "")
        async with self.session.request(method, url, headers=hdrs) as resp:
            return resp.status, msgspec.json.decode(await resp.read())

    async def ok(
        self, method: str, path: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        status, body = await self.call(method, path, params, **kw)
        assert status == 200, body
        return body

    @property
    def prefix(self) -> str:
        return "/api/v3" if self.venue.spec.market == "spot" else "/fapi/v1"

    async def order(self, method: str = "POST", **params: Any) -> tuple[int, Any]:
        """``{method} {prefix}/order`` for BTCUSDT with ``params``: (status, body)."""
        return await self.call(method, f"{self.prefix}/order", {"symbol": "BTCUSDT", **params})

    async def order_ok(self, method: str = "POST", **params: Any) -> Any:
        status, body = await self.order(method, **params)
        assert status == 200, body
        return body


@asynccontextmanager
async def venue_session(
    recording: Recording, key_kind: str = "hmac", **config: Any
) -> AsyncIterator[Wire]:
    """A started venue on this loop and a wire client; everything closed on exit."""
    api_key, secret = keys(key_kind)
    config.setdefault("start", "manual")
    venue = LoopbackVenue(
        VenueConfig(recording=recording.files, api_key=api_key, **config), recording
    )
    await venue.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Wire(venue, session, secret)
    finally:
        await venue.stop()


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msgspec.json.decode(msg.data)
