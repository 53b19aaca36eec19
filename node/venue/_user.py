"""User-data streams: the WebSocket API (``session.logon``, ``userDataStream.*``) and listen keys.

Spot: events go to every WS-API socket that called ``userDataStream.subscribe``, wrapped as
``{"subscriptionId", "event"}``. USD-M: a listen key (REST ``POST /fapi/v1/listenKey`` with an
HMAC key, or WS-API ``userDataStream.start`` after an Ed25519 logon) opens
``/ws?listenKey=KEY``; events are sent bare. One active key per API key, as on Binance.
Events leave in order from one pump task; :meth:`UserHub.pause` holds them until
:meth:`UserHub.resume` (a user stream that stalls), :meth:`UserHub.drop` closes the sockets and
loses what was held, as a Binance stream loses what it sent into a dead connection.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import WSCloseCode
from aiohttp import WSMsgType
from aiohttp import web

from node.venue._model import ApiError
from node.venue.auth import ApiKey

_AUTH = (-2015, "Invalid API-key, IP, or permissions for action.")


class UserHub:
    """User sockets of the one venue account, and the ordered event pump."""

    def __init__(
        self, market: str, api_key: ApiKey, check_time: Callable[[int, int], None]
    ) -> None:
        self.market, self.api_key, self._check_time = market, api_key, check_time
        self.subscribers: dict[web.WebSocketResponse, int] = {}  # spot WS-API subscriptions
        self.key_sockets: set[web.WebSocketResponse] = set()
        self.api_sockets: set[web.WebSocketResponse] = set()
        self.listen_key: str | None = None
        self.paused = False
        self.sent = 0
        self.lost = 0
        self._held: list[bytes] = []
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._next_sub = 0
        self.logons = 0

    # -- events -----------------------------------------------------------------------------
    def push(self, event: dict[str, Any]) -> None:
        data = msgspec.json.encode(event)
        if self.paused:
            self._held.append(data)
        else:
            self._queue.put_nowait(data)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        for data in self._held:
            self._queue.put_nowait(data)
        self._held.clear()

    async def pump(self) -> None:
        """Send queued events, in order, to every live user socket (runs until cancelled)."""
        while True:
            data = await self._queue.get()
            text = data.decode()
            if self.market == "spot":
                targets = [
                    (ws, f'{{"subscriptionId":{sid},"event":{text}}}')
                    for ws, sid in list(self.subscribers.items())
                ]
            else:
                targets = [(ws, text) for ws in list(self.key_sockets)]
            for ws, frame in targets:
                try:
                    await ws.send_str(frame)
                    self.sent += 1
                except (ConnectionError, RuntimeError):
                    self.subscribers.pop(ws, None)
                    self.key_sockets.discard(ws)

    async def drop(self) -> int:
        """Close every user socket (the client reconnects, re-subscribes and reconciles); the
        events a paused stream held are lost with it."""
        self.paused = False
        self.lost += len(self._held)
        self._held.clear()
        sockets = set(self.api_sockets) | set(self.key_sockets)
        self.subscribers.clear()
        self.key_sockets.clear()
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY) for ws in sockets))
        return len(sockets)

    # -- listen keys ------------------------------------------------------------------------
    def new_listen_key(self) -> str:
        if self.listen_key is None:
            self.listen_key = secrets.token_urlsafe(45)[:60]
        return self.listen_key

    def check_listen_key(self, key: str | None) -> None:
        if not key or key != self.listen_key:
            raise ApiError(-1125, "This listenKey does not exist.")

    def close_listen_key(self) -> None:
        self.listen_key = None

    async def listen_key_socket(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("listenKey") or request.match_info.get("key")
        try:
            self.check_listen_key(key)
        except ApiError as exc:
            return web.json_response(exc.body(), status=400)
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        self.key_sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self.key_sockets.discard(ws)
        return ws

    # -- WebSocket API ----------------------------------------------------------------------
    async def ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        self.api_sockets.add(ws)
        state = {"authed": request.headers.get("X-MBX-APIKEY") == self.api_key.key, "logon": False}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await ws.send_str(self._answer(ws, msg.data, state))
        finally:
            self.api_sockets.discard(ws)
            self.subscribers.pop(ws, None)
        return ws

    def _answer(self, ws: web.WebSocketResponse, text: str, state: dict[str, bool]) -> str:
        rid: Any = None
        try:
            req = msgspec.json.decode(text)
            rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
            result = self._call(ws, str(method), dict(params), state)
            reply: dict[str, Any] = {"id": rid, "status": 200, "result": result}
        except ApiError as exc:
            reply = {"id": rid, "status": 400 if exc.code != -2015 else 401, "error": exc.body()}
        except (msgspec.DecodeError, AttributeError, TypeError, ValueError):
            reply = {
                "id": rid,
                "status": 400,
                "error": {"code": -1102, "msg": "Malformed request."},
            }
        return msgspec.json.encode(reply).decode()

    def _call(
        self, ws: web.WebSocketResponse, method: str, params: dict[str, Any], state: dict[str, bool]
    ) -> dict[str, Any]:
        if method == "session.logon":
            if params.get("apiKey") != self.api_key.key:
                raise ApiError(*_AUTH)
            payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
            if not self.api_key.verify(payload, str(params.get("signature", ""))):
                raise ApiError(-1022, "Signature for this request is not valid.")
            self._check_time(int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000)))
            state["authed"] = state["logon"] = True
            self.logons += 1
            now = int(params["timestamp"])
            return {
                "apiKey": self.api_key.key,
                "authorizedSince": now,
                "connectedSince": now,
                "returnRateLimits": False,
                "serverTime": now,
                "userDataStream": False,
            }
        if method == "session.status":
            return {"apiKey": self.api_key.key if state["logon"] else None}
        if method == "session.logout":
            state["logon"] = False
            return {}
        if not (state["logon"] or (state["authed"] and params.get("apiKey") == self.api_key.key)):
            raise ApiError(*_AUTH)
        if method == "userDataStream.subscribe" and self.market == "spot":
            sid = self._next_sub
            self._next_sub += 1
            self.subscribers[ws] = sid
            return {"subscriptionId": sid}
        if method == "userDataStream.unsubscribe" and self.market == "spot":
            self.subscribers.pop(ws, None)
            return {}
        if method in ("userDataStream.start", "userDataStream.ping") and self.market == "usdm":
            return {"listenKey": self.new_listen_key()}
        if method == "userDataStream.stop" and self.market == "usdm":
            self.close_listen_key()
            return {}
        raise ApiError(-1100, f"Unknown method {method!r}.")
