"""Market-data WebSockets: ``/stream?streams=...`` with ``SUBSCRIBE``/``UNSUBSCRIBE`` frames.

Every frame is a combined-stream envelope ``{"stream": name, "data": ...}``. A subscription is
registered the moment its frame arrives (before any await), so a ``GET depth`` the client sends
right after ``SUBSCRIBE`` never misses a diff. Any depth speed (``@depth``, ``@depth@100ms``,
``@depth@0ms``...) gets the recorded diffs unchanged; duplicate subscriptions are accepted (the
adapter re-subscribes everything after a reconnect).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
from aiohttp import WSCloseCode
from aiohttp import WSMsgType
from aiohttp import web

from node.venue.recording import AGG_TRADE
from node.venue.recording import DEPTH
from node.venue.recording import TICKER
from node.venue.recording import TRADE

MARK = 4
_log = logging.getLogger(__name__)
_DEPTH_SPEEDS = ("0ms", "100ms", "250ms", "500ms", "1000ms")


def stream_kind(name: str, symbol: str, market: str) -> int | None:
    """The replayed kind a stream name carries for ``symbol``, or None (not replayed).

    >>> stream_kind("btcusdt@depth@100ms", "BTCUSDT", "spot"), stream_kind("btcusdt@kline_1m", "BTCUSDT", "spot")
    (0, None)
    """
    parts = name.split("@")
    if parts[0] != symbol.lower() or len(parts) < 2:
        return None
    kind, rest = parts[1], parts[2:]
    if kind == "depth" and (not rest or (len(rest) == 1 and rest[0] in _DEPTH_SPEEDS)):
        return DEPTH
    if not rest:
        return {"trade": TRADE, "aggTrade": AGG_TRADE, "bookTicker": TICKER}.get(kind) or (
            MARK if kind == "markPrice" and market == "usdm" else None
        )
    if kind == "markPrice" and rest == ["1s"] and market == "usdm":
        return MARK
    return None


class MarketHub:
    """Market sockets and their subscriptions; publishes one frame per subscribed stream name."""

    def __init__(self, symbol: str, market: str) -> None:
        self.symbol, self.market = symbol, market
        self.sockets: dict[web.WebSocketResponse, set[str]] = {}
        self._by_kind: dict[int, dict[str, set[web.WebSocketResponse]]] = {
            k: {} for k in (DEPTH, TRADE, AGG_TRADE, TICKER, MARK)
        }
        self.on_subscribe: Callable[[], None] | None = None
        self.connections = 0
        self.dropped = 0
        self.frames_sent = 0

    def wants(self, kind: int) -> bool:
        return bool(self._by_kind[kind])

    def _add(self, ws: web.WebSocketResponse, names: list[str]) -> None:
        for name in names:
            self.sockets[ws].add(name)
            kind = stream_kind(name, self.symbol, self.market)
            if kind is None:
                _log.warning("stream %r is not replayed by the loopback venue", name)
                continue
            self._by_kind[kind].setdefault(name, set()).add(ws)
        if self.on_subscribe is not None and any(self._by_kind.values()):
            self.on_subscribe()

    def _remove(self, ws: web.WebSocketResponse, names: list[str]) -> None:
        for name in names:
            self.sockets.get(ws, set()).discard(name)
            kind = stream_kind(name, self.symbol, self.market)
            subs = self._by_kind[kind] if kind is not None else {}
            if name in subs:
                subs[name].discard(ws)
                if not subs[name]:
                    del subs[name]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        self.connections += 1
        self.sockets[ws] = set()
        self._add(ws, [s for s in request.query.get("streams", "").split("/") if s])
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._control(ws, msg.data)
        finally:
            self._remove(ws, list(self.sockets.get(ws, ())))
            self.sockets.pop(ws, None)
        return ws

    async def _control(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
            method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
        except (msgspec.DecodeError, AttributeError):
            await ws.send_str('{"error":{"code":3,"msg":"Invalid JSON"},"id":null}')
            return
        if method == "SUBSCRIBE":
            self._add(ws, [str(p) for p in params])
            result = None
        elif method == "UNSUBSCRIBE":
            self._remove(ws, [str(p) for p in params])
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(self.sockets.get(ws, ()))
        else:
            reply = {"error": {"code": 2, "msg": f"Invalid request: method {method!r}"}, "id": rid}
            await ws.send_str(msgspec.json.encode(reply).decode())
            return
        await ws.send_str(msgspec.json.encode({"result": result, "id": rid}).decode())

    async def publish(self, kind: int, data: str) -> None:
        """Send ``data`` (a JSON object as text) to every socket subscribed to a ``kind`` stream."""
        for name, sockets in list(self._by_kind[kind].items()):
            frame = f'{{"stream":"{name}","data":{data}}}'
            for ws in list(sockets):
                try:
                    await ws.send_str(frame)
                    self.frames_sent += 1
                except (ConnectionError, RuntimeError):
                    self._remove(ws, list(self.sockets.get(ws, ())))

    async def close_all(self, which: str = "all") -> int:
        """Close market sockets (clients reconnect and resync); returns how many.

        ``which``: ``all``, ``depth`` (sockets carrying a depth stream) or ``other`` (the rest).
        """
        if which not in ("all", "depth", "other"):
            raise ValueError(f"which must be all|depth|other, got {which!r}")
        sockets = [
            ws
            for ws, names in self.sockets.items()
            if which == "all"
            or (which == "depth")
            == any(stream_kind(n, self.symbol, self.market) == DEPTH for n in names)
        ]
        for ws in sockets:
            self._remove(ws, list(self.sockets.get(ws, ())))
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"venue drop") for ws in sockets)
        )
        self.dropped += len(sockets)
        return len(sockets)
