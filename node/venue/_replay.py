"""The replay clock: recorded messages out to the market sockets, in recorded order and pace.

Every ``E``/``T`` is shifted by one constant (``offset_ms``, fixed when a pass is armed) that is
a multiple of ``align_ms``: a node sampling on that grid cuts the recording where a backtest of
it does. The recorded start (the lead trades, else the first message) lands in the
``align_ms`` slot after the wall clock's, so a snapshot a node stamps with its own clock (the
adapter does) falls before the first sample boundary, as the imported snapshot does. Intervals
stay as recorded, so at ``speed > 1`` exchange time runs ahead of the wall clock. A pass armed
by :meth:`Replayer.send_lead` (the venue's ``start="snapshot"``) first sends the trades (and
markPrice frames) recorded before the sync point (``Recording.lead``), as an import keeps them.
Each diff updates the venue book *before* it is sent, so ``GET depth`` always matches the diffs
already out (``lastUpdateId`` = last ``u``). USD-M ``@trade`` is also published as
``@aggTrade`` (one trade per aggregate; the adapter only subscribes that). ``@markPrice@1s``: a
recording's own ``markPrice`` frames are replayed as recorded (their funding rate ``r`` is what
an import keeps for the backtest); a recording without any has none, unless a rate is
configured: then one frame is synthesised from the book mid per exchange second. Trades and book
changes then go to the matcher (resting orders fill by the queue rule).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import msgspec

from node.venue._book import VenueBook
from node.venue._matching import Matcher
from node.venue._streams import MARK
from node.venue._streams import MarketHub
from node.venue.queue import BUYER
from node.venue.queue import SELLER
from node.venue.recording import AGG_TRADE
from node.venue.recording import DEPTH
from node.venue.recording import MARK_PRICE
from node.venue.recording import TICKER
from node.venue.recording import TRADE
from node.venue.recording import Recording

_FUNDING_MS = 8 * 3600 * 1000
_YIELD_EVERY = 64
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _stamp_ms(m: Any) -> int:
    d = _decode(m.data)
    return int(d["E"] if m.kind == MARK_PRICE else d.get("T") or d["E"])


def _agg(d: dict[str, Any]) -> dict[str, Any]:
    t = d["t"]
    return {"e": "aggTrade", "E": d["E"], "a": t, "s": d["s"], "p": d["p"], "q": d["q"],
            "f": t, "l": t, "T": d["T"], "m": d["m"]}  # fmt: skip


class Replayer:
    """Drives one recording through the venue book, the market sockets and the matcher."""

    def __init__(
        self,
        recording: Recording,
        book: VenueBook,
        hub: MarketHub,
        matcher: Matcher,
        speed: float,
        loop: bool,
        funding_rate: str | None,
        align_ms: int = 1,
    ) -> None:
        self.rec, self.book, self.hub, self.matcher = recording, book, hub, matcher
        self.speed, self.loop, self.funding_rate = speed, loop, funding_rate
        self.align_ms = align_ms
        self._lead_ms = min(map(_stamp_ms, recording.lead), default=recording.first_event_ms)
        self._armed = False
        self._lead_out = False
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.offset_ms = 0
        self.last_ms = 0
        self.replayed = 0
        self.passes = 0
        self.skip_diffs = 0
        self.gaps_injected = 0
        self.diffs_skipped = 0
        self.behind_s = 0.0
        self.held_diffs = 0
        self._mark_s = 0
        self._synth_mark = (
            funding_rate is not None
            and recording.market == "usdm"
            and not any(m.kind == MARK_PRICE for m in (*recording.lead, *recording.messages))
        )
        self._hold_until = 0.0
        self._held: list[str] = []
        self._frozen: tuple[int, Any, Any] | None = None

    def clock_ms(self) -> int:
        """Venue time: the replayed exchange time, never behind the wall clock."""
        return max(wall_ms(), self.last_ms)

    def arm(self, lead: bool = False) -> None:
        """Fix this pass's clock offset (once per pass; see the module docstring); ``lead``:
        the pass starts with the lead trades."""
        if self._armed:
            return
        start = min(self._lead_ms, self.rec.first_event_ms) if lead else self.rec.first_event_ms
        a, base = self.align_ms, max(wall_ms(), self.last_ms + 1)
        self.offset_ms = (base // a + 1 - start // a) * a
        self._armed = True

    async def send_lead(self) -> None:
        """Arm the clock and send the lead trades (once per pass, before it starts)."""
        self.arm(lead=True)
        if not self._lead_out:
            self._lead_out = True
            for m in self.rec.lead:
                await self._one(m.kind, m.data)

    def inject_gap(self, diffs: int) -> None:
        """Leave the next ``diffs`` depth diffs out of the stream (the venue book still moves)."""
        self.skip_diffs += diffs
        self.gaps_injected += 1

    async def snapshot(self, limit: int, hold_s: float) -> dict[str, Any]:
        """``GET depth``, consistent with the diffs already sent (``lastUpdateId`` = last ``u``).

        With ``hold_s > 0`` the diffs that follow are queued (in order, none lost) for that long,
        and snapshot requests inside the window get the same book: the adapter rebuilds the book
        once per reconnected socket, concurrently, through one shared buffer, so a diff arriving
        between two snapshot responses would be wiped by the second one's CLEAR.
        """
        now = asyncio.get_running_loop().time()
        if self._frozen is None or now >= self._hold_until:
            await self._flush()  # every diff up to the new snapshot leaves before it
            self._frozen = self.book.freeze()
        if hold_s > 0:
            self._hold_until = now + hold_s
        return self.book.snapshot(self._frozen, limit)

    async def _flush(self) -> None:
        held, self._held = self._held, []
        for frame in held:
            await self.hub.publish(DEPTH, frame)

    async def _depth_out(self, text: str) -> None:
        if asyncio.get_running_loop().time() < self._hold_until:
            self._held.append(text)
            self.held_diffs += 1
            return
        if self._held:
            await self._flush()
        await self.hub.publish(DEPTH, text)

    async def run(self) -> None:
        await self.started.wait()
        while True:
            await self._pass()
            await self._flush()
            if not self.loop:
                self.finished.set()
                return
            self.book.reset()
            self._frozen = None
            await self.hub.close_all()

    async def _pass(self) -> None:
        msgs, loop = self.rec.messages, asyncio.get_running_loop()
        self.arm()
        self._armed = self._lead_out = False  # the next pass arms afresh
        self.passes += 1
        t0, r0, speed = loop.time(), msgs[0].recv_ns, self.speed
        for i, m in enumerate(msgs):
            if not math.isinf(speed):
                delay = t0 + (m.recv_ns - r0) / 1e9 / speed - loop.time()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
                    await self._one(m.kind, m.data)
                    continue
                self.behind_s = max(0.0, -delay)
            if i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            await self._one(m.kind, m.data)

    async def _one(self, kind: int, raw: bytes) -> None:
        d = _decode(raw)
        off, hub = self.offset_ms, self.hub
        if "E" in d:
            d["E"] += off
        if "T" in d:
            d["T"] += off
        ts = d["E"] if kind == MARK_PRICE else d.get("T") or d.get("E") or self.last_ms
        if ts > self.last_ms:
            self.last_ms = ts
        self.replayed += 1
        if kind == DEPTH:
            changes = list(self.book.apply(d["b"], d["a"], d["u"]))
            if self.skip_diffs:
                self.skip_diffs -= 1
                self.diffs_skipped += 1
            elif hub.wants(DEPTH):
                await self._depth_out(_encode(d).decode())
            for side, price, size in changes:
                self.matcher.on_level(side, price, size)
        elif kind in (TRADE, AGG_TRADE):
            if kind == TRADE and hub.wants(TRADE):
                await hub.publish(TRADE, _encode(d).decode())
            if hub.wants(AGG_TRADE):
                await hub.publish(AGG_TRADE, _encode(d if kind == AGG_TRADE else _agg(d)).decode())
            aggressor = SELLER if d["m"] else BUYER
            self.matcher.on_trade(float(d["p"]), float(d["q"]), aggressor, d["T"])
        elif kind == TICKER and hub.wants(TICKER):
            await hub.publish(TICKER, _encode(d).decode())
        elif kind == MARK_PRICE and hub.wants(MARK):
            await hub.publish(MARK, _encode(d).decode())
        if self._synth_mark and ts // 1000 > self._mark_s:
            self._mark_s = ts // 1000
            await self._mark_price(self._mark_s * 1000)
        self.matcher.on_clock(ts)

    async def _mark_price(self, ts_ms: int) -> None:
        mid = self.book.mid()
        if mid is None or not self.hub.wants(MARK):
            return
        px = f"{mid:.8f}"
        data = {
            "e": "markPriceUpdate",
            "E": ts_ms,
            "s": self.rec.symbol,
            "p": px,
            "i": px,
            "P": px,
            "r": self.funding_rate,
            "T": (ts_ms // _FUNDING_MS + 1) * _FUNDING_MS,
        }
        await self.hub.publish(MARK, _encode(data).decode())
