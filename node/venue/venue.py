"""The loopback Binance venue: one aiohttp server on 127.0.0.1 for REST, market streams, user
streams and a control endpoint, driven by a replayed recording.

In a running event loop: ``venue = LoopbackVenue(cfg); urls = await venue.start(); ...;
await venue.stop()``. Beside a ``TradingNode`` (which owns its own loop), :func:`running` runs
the venue on a thread of its own. Control (also ``POST /_venue/...`` over HTTP, for tests):
``drop_market`` (clients reconnect and take a new snapshot), ``inject_gap`` (leave diffs out of
the stream: the adapter never notices, its book silently diverges), ``pause_user`` /
``resume_user`` / ``drop_user``, ``start_replay``, ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

from aiohttp import web

from node.venue._accounts import FuturesAccount
from node.venue._accounts import SpotAccount
from node.venue._book import SymbolSpec
from node.venue._book import VenueBook
from node.venue._matching import Matcher
from node.venue._model import ApiError
from node.venue._model import Fill
from node.venue._model import Order
from node.venue._payloads import order_event
from node.venue._replay import Replayer
from node.venue._replay import wall_ms
from node.venue._rest import RestApi
from node.venue._rest import reply
from node.venue._streams import MarketHub
from node.venue._user import UserHub
from node.venue.config import DEFAULT_BALANCES
from node.venue.config import VenueConfig
from node.venue.recording import AGG_TRADE
from node.venue.recording import TRADE
from node.venue.recording import Recording
from node.venue.recording import load_recording

__all__ = ["LoopbackVenue", "VenueThread", "VenueUrls", "running"]

T = TypeVar("T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VenueUrls:
    """Where the adapter must point: every base URL, or it dials real Binance hosts."""

    http: str  # base_url_http (data and exec)
    ws: str  # data base_url_ws (market streams)
    ws_api: str  # exec base_url_ws (WebSocket API)
    ws_stream: str  # exec base_url_ws_stream (USD-M listen-key stream)


class LoopbackVenue:
    """A fake Binance (spot or USD-M, one symbol) on loopback, replaying one recording."""

    def __init__(self, config: VenueConfig, recording: Recording | None = None) -> None:
        self.config = config
        self.recording = recording or load_recording(config.recording, config.market)
        self.spec = SymbolSpec.load(self.recording, config.exchange_info)
        self.api_key = config.api_key
        balances = config.balances or DEFAULT_BALANCES[self.spec.market]
        self.account: SpotAccount | FuturesAccount = (
            SpotAccount(self.spec, balances)
            if self.spec.market == "spot"
            else FuturesAccount(self.spec, balances, config.leverage)
        )
        self.book = VenueBook(self.recording)
        self.market = MarketHub(self.spec.symbol, self.spec.market)
        self.user = UserHub(self.spec.market, self.api_key, self.check_time)
        self.matcher = Matcher(self.spec, self.book, self.account, self, self.clock_ms)
        self.replayer = Replayer(
            self.recording, self.book, self.market, self.matcher,
            config.speed, config.loop, config.funding_rate, config.clock_align_ms,
        )  # fmt: skip
        self.snapshots_served = 0
        self.account_reads = 0
        self._start_pending = False
        self.urls: VenueUrls | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if config.start == "subscribe":
            self.market.on_subscribe = self.start_replay

    # -- clock, auth, events (the matcher's sink) -------------------------------------------
    def clock_ms(self) -> int:
        return self.replayer.clock_ms()

    def check_time(self, timestamp: int, recv_window: int) -> None:
        """Binance's window: ``timestamp`` within ``recvWindow`` before now, <= 1 s ahead."""
        if not 0 < recv_window <= self.config.recv_window_max_ms:
            raise ApiError(-1131, "recvWindow must be less than 60000.")
        now = wall_ms()
        if timestamp > now + 1000 or now - timestamp > recv_window:
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")

    def order_event(
        self, order: Order, x: str, fill: Fill | None = None, cancel_id: str = ""
    ) -> None:
        self.user.push(order_event(self.spec, order, x, self.clock_ms(), fill, cancel_id))

    def account_event(self) -> None:
        if isinstance(self.account, SpotAccount):
            self.user.push(self.account.event(self.clock_ms()))
        else:
            self.user.push(self.account.event(self.clock_ms(), self.matcher.mark()))

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> VenueUrls:
        """Bind (port 0 = a free one), start the event pump and the replay task."""
        app = web.Application()
        app.router.add_get("/stream", self.market.handle)
        if self.spec.market == "spot":
            app.router.add_get("/ws-api/v3", self.user.ws_api)
        else:
            app.router.add_get("/ws-fapi/v1", self.user.ws_api)
            app.router.add_get("/ws", self.user.listen_key_socket)
            app.router.add_get("/ws/{key}", self.user.listen_key_socket)
        app.router.add_get("/_venue/status", self._http_status)
        app.router.add_post("/_venue/{area}/{action}", self._http_control)
        app.router.add_route("*", "/{tail:.*}", RestApi(self).dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, shutdown_timeout=1.0)
        await site.start()
        port = self._runner.addresses[0][1]
        host = self.config.host
        self.urls = VenueUrls(
            http=f"http://{host}:{port}",
            ws=f"ws://{host}:{port}",
            ws_api=f"ws://{host}:{port}/{'ws-api/v3' if self.spec.market == 'spot' else 'ws-fapi/v1'}",
            ws_stream=f"ws://{host}:{port}",
        )
        self._tasks = [
            asyncio.create_task(self.user.pump(), name="venue-user-pump"),
            asyncio.create_task(self.replayer.run(), name="venue-replay"),
        ]
        self._tasks[1].add_done_callback(self._replay_done)
        if self.config.start == "now":
            self.start_replay()
        _log.info(
            "loopback %s venue for %s on %s", self.spec.market, self.spec.symbol, self.urls.http
        )
        return self.urls

    def _replay_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.error("venue replay failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Stop the replay and the pump, close every socket, release the port."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await asyncio.gather(self.market.close_all(), self.user.drop())
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def before_snapshot(self) -> None:
        """Wait before serving ``GET depth`` (a ``SUBSCRIBE`` sent just before must land). With
        ``start="snapshot"``, the first one also waits (<= 2 s) for the trade stream's
        subscription, arms the replay clock and sends the lead trades ahead of the snapshot."""
        delay = self.config.snapshot_delay_s
        if self.config.start == "snapshot" and not self.replayer.started.is_set():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while loop.time() < deadline and not (
                self.market.wants(TRADE) or self.market.wants(AGG_TRADE)
            ):
                await asyncio.sleep(0.01)
            await self.replayer.send_lead()
            delay = max(delay, 0.05)  # the lead trades reach the node before the snapshot
        await asyncio.sleep(delay)

    def after_snapshot(self) -> None:
        """With ``start="snapshot"``: start the replay ``start_delay_s`` after the first snapshot
        (the node has built its book from it before the first replayed message)."""
        if self.config.start == "snapshot" and not self._start_pending:
            self._start_pending = True
            asyncio.get_running_loop().call_later(self.config.start_delay_s, self.start_replay)

    # -- control ----------------------------------------------------------------------------
    def start_replay(self) -> None:
        self.replayer.started.set()

    async def drop_market(self, which: str = "all") -> int:
        """Close market sockets: ``all``, ``depth`` (the socket with the diff stream), ``other``."""
        return await self.market.close_all(which)

    async def drop_user(self) -> int:
        return await self.user.drop()

    def pause_user(self) -> None:
        self.user.pause()

    def resume_user(self) -> None:
        self.user.resume()

    def inject_gap(self, diffs: int = 1) -> None:
        if diffs < 1:
            raise ApiError(-1102, "diffs must be >= 1")
        self.replayer.inject_gap(diffs)

    def status(self) -> dict[str, Any]:
        r, rec = self.replayer, self.recording
        return {
            "market": self.spec.market,
            "symbol": self.spec.symbol,
            "started": r.started.is_set(),
            "finished": r.finished.is_set(),
            "replayed": r.replayed,
            "messages": len(rec.messages),
            "passes": r.passes,
            "last_update_id": self.book.last_u,
            "behind_s": round(r.behind_s, 3),
            "clock_offset_ms": r.offset_ms,
            "first_event_ms": rec.first_event_ms,
            "market_sockets": len(self.market.sockets),
            "market_connections": self.market.connections,
            "market_dropped": self.market.dropped,
            "frames_sent": self.market.frames_sent,
            "snapshots_served": self.snapshots_served,
            "gaps_injected": r.gaps_injected,
            "diffs_skipped": r.diffs_skipped,
            "user_sockets": len(self.user.api_sockets) + len(self.user.key_sockets),
            "user_streams": len(self.user.subscribers) + len(self.user.key_sockets),
            "logons": self.user.logons,
            "user_paused": self.user.paused,
            "user_events_sent": self.user.sent,
            "user_events_lost": self.user.lost,
            "account_reads": self.account_reads,
            "open_orders": len(self.matcher.open_orders()),
            "fills": len(self.matcher.fills),
        }

    async def _http_status(self, request: web.Request) -> web.Response:
        return reply(self.status())

    async def _http_control(self, request: web.Request) -> web.Response:
        area, action = request.match_info["area"], request.match_info["action"]
        done: dict[str, Any] = {"ok": True}
        try:
            if (area, action) == ("market", "drop"):
                done["dropped"] = await self.drop_market(request.query.get("which", "all"))
            elif (area, action) == ("market", "gap"):
                self.inject_gap(int(request.query.get("diffs", "1")))
            elif (area, action) == ("user", "drop"):
                done["dropped"] = await self.drop_user()
            elif (area, action) == ("user", "pause"):
                self.pause_user()
            elif (area, action) == ("user", "resume"):
                self.resume_user()
            elif (area, action) == ("replay", "start"):
                self.start_replay()
            else:
                return reply({"code": -1000, "msg": f"no control {area}/{action}"}, 404)
        except (ApiError, ValueError) as exc:
            return reply({"code": -1102, "msg": str(exc)}, 400)
        return reply(done)


class VenueThread:
    """A :class:`LoopbackVenue` on its own thread and event loop (for beside a TradingNode)."""

    def __init__(self, config: VenueConfig, recording: Recording | None = None) -> None:
        self.venue = LoopbackVenue(config, recording)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="loopback-venue", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def urls(self) -> VenueUrls:
        assert self.venue.urls is not None
        return self.venue.urls

    def start(self) -> VenueUrls:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self.urls

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.venue.start())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def call(
        self, fn: Callable[[], Coroutine[Any, Any, T]] | Callable[[], T], timeout: float = 30
    ) -> T:
        """Run ``fn`` (plain or async) on the venue's loop and return its result."""

        async def wrapped() -> T:
            out = fn()
            return await out if asyncio.iscoroutine(out) else out  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def status(self) -> dict[str, Any]:
        return self.call(self.venue.status)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.venue.stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)


@contextlib.contextmanager
def running(config: VenueConfig, recording: Recording | None = None) -> Iterator[VenueThread]:
    """``with running(cfg) as venue: ... venue.urls ...``: a venue thread, stopped on exit."""
    thread = VenueThread(config, recording)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()
