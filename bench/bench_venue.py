"""Loopback venue -> REAL Nautilus Binance adapter: market events per second a node takes in.

Target (issue 13): >= 20x a busy BTCUSDT minute. The busy minute is measured on each recording:
the 60 s window of receive time holding the most market messages (depth diffs + trades +
bookTicker), as messages per second.

Node: the venue replays the whole recording at ``speed=inf`` (as fast as the
sockets take it) to a ``TradingNode`` whose Binance data client feeds a counting strategy
subscribed to quotes, trades and L2 deltas (USD-M also mark prices). Events/s = messages the
strategy received (the book snapshot excluded) / time from the replay's start to the last one,
in wall time and in the node process's CPU time (the machine may be shared: CPU time is the
number that does not depend on the neighbours; the target is judged on it).
The venue runs in a child process (as Binance is elsewhere; no GIL shared with the node) and
is driven through its HTTP control endpoint. Baseline, same venue and run: a raw aiohttp
WebSocket client on the same streams that decodes every frame with msgspec (no Nautilus):
what the venue itself can push.
Writes bench/results/bench_venue.json and prints a table.

Usage: ``python bench/bench_venue.py [--markets spot usdm]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.venue import ApiKey
from node.venue import LoopbackVenue
from node.venue import VenueConfig
from node.venue import VenueUrls
from node.venue import binance_configs
from node.venue import load_recording
from node.venue.adapter import dispose_node
from node.venue.adapter import trading_node
from node.venue.recording import Recording

RESULTS = Path(__file__).resolve().parent / "results"
WS = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-ws"
FILES = {
    "spot": ["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"],
    "usdm": ["usdm_btcusdt_20240808.gz"],
}
TARGET_X = 20.0


def _streams(market: str) -> list[str]:
    if market == "spot":
        return ["btcusdt@bookTicker", "btcusdt@depth@100ms", "btcusdt@trade"]
    return ["btcusdt@bookTicker", "btcusdt@depth@0ms", "btcusdt@aggTrade", "btcusdt@markPrice@1s"]


class _CountConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    usdm: bool = False


class _Count(Strategy):
    """Counts every market event (after the book snapshot) and stamps the last one."""

    def __init__(self, config: _CountConfig) -> None:
        super().__init__(config)
        self.n = self.batches = self.deltas = 0
        self.last = 0.0

    def on_start(self) -> None:
        iid = self.config.instrument_id
        self.subscribe_quote_ticks(iid)
        self.subscribe_trade_ticks(iid)
        self.subscribe_order_book_deltas(iid, book_type=BookType.L2_MBP)
        if self.config.usdm:
            self.subscribe_mark_prices(iid)

    def _tick(self) -> None:
        self.last = time.perf_counter()
        self.n += 1

    def on_quote_tick(self, tick: Any) -> None:
        self._tick()

    def on_trade_tick(self, tick: Any) -> None:
        self._tick()

    def on_mark_price(self, mark: Any) -> None:
        self._tick()

    def on_order_book_deltas(self, deltas: Any) -> None:
        self.batches += 1
        if self.batches > 1:  # the first is the REST snapshot
            self.deltas += len(deltas.deltas)
            self._tick()


def _wait(cond: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _serve(files: list[str], key: str, secret: str, conn: Any) -> None:
    """Child process: the venue on its own interpreter (no GIL shared with the node)."""

    async def serve() -> None:
        cfg = VenueConfig(
            recording=tuple(files),
            api_key=ApiKey.hmac(key, secret),
            speed=float("inf"),
            start="manual",
        )
        venue = LoopbackVenue(cfg)
        urls = await venue.start()
        conn.send(urls)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await venue.stop()

    asyncio.run(serve())


@contextmanager
def venue_process(rec: Recording) -> Iterator[tuple[VenueUrls, str, str]]:
    key, secret = "bench-key", secrets.token_hex(32)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=_serve, args=([str(f) for f in rec.files], key, secret, child), daemon=True
    )
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the venue process did not start")
        yield parent.recv(), key, secret
    finally:
        parent.send("stop")
        proc.join(30)


def _status(urls: VenueUrls) -> dict[str, Any]:
    return httpx.get(f"{urls.http}/_venue/status", timeout=10).json()


def run_node(rec: Recording) -> dict[str, Any]:
    with venue_process(rec) as (urls, key, secret):
        data, exec_ = binance_configs(urls, rec.market, rec.symbol, api_key=key, api_secret=secret)
        iid = next(iter(data.instrument_provider.load_ids))
        counter = _Count(_CountConfig(instrument_id=iid, usdm=rec.market == "usdm"))
        node = trading_node(data, exec_, [counter])
        loop = node.get_event_loop()
        assert loop is not None
        out: dict[str, Any] = {}

        def driver() -> None:
            ready = _wait(lambda: counter.batches >= 1 and _status(urls)["market_sockets"] == 2, 60)
            time.sleep(0.5)  # the venue's post-snapshot hold
            t0, c0 = time.perf_counter(), time.process_time()
            httpx.post(f"{urls.http}/_venue/replay/start", timeout=10).raise_for_status()
            _wait(lambda: _status(urls)["finished"], 600)
            sent = _status(urls)["frames_sent"]
            t_sent = time.perf_counter() - t0
            # every frame is one event; the node's loop can stall for seconds on a burst of
            # socket callbacks, so wait for the count, not for a quiet spell
            drained = _wait(lambda: counter.n >= sent, 600)
            out.update(
                ready=ready,
                drained=drained,
                venue_frames=sent,
                venue_send_s=t_sent,
                node_wall_s=counter.last - t0,
                node_cpu_s=time.process_time() - c0,
            )
            loop.call_soon_threadsafe(node.stop)

        thread = threading.Thread(target=driver, daemon=True)
        thread.start()
        try:
            node.run()
        finally:
            thread.join(10)
            dispose_node(node)
    return {
        **out,
        "node_events": counter.n,
        "node_deltas": counter.deltas,
        "node_events_per_s": counter.n / out["node_wall_s"],
        "node_events_per_cpu_s": counter.n / out["node_cpu_s"],
    }


async def _baseline(rec: Recording) -> dict[str, Any]:
    decode = msgspec.json.Decoder().decode
    with venue_process(rec) as (urls, _, _):
        streams = _streams(rec.market)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{urls.ws}/stream?streams={streams[0]}")
            await ws.send_str(
                msgspec.json.encode({"method": "SUBSCRIBE", "params": streams, "id": 1}).decode()
            )
            await ws.receive()
            t0, c0 = time.perf_counter(), time.process_time()
            httpx.post(f"{urls.http}/_venue/replay/start", timeout=10).raise_for_status()
            n, last = 0, 0.0
            while True:
                try:
                    msg = await ws.receive(timeout=2.0)
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                decode(msg.data)
                last = time.perf_counter()
                n += 1
            cpu = time.process_time() - c0
            await ws.close()
    wall = last - t0
    return {
        "baseline_events": n,
        "baseline_wall_s": wall,
        "baseline_cpu_s": cpu,
        "baseline_events_per_s": n / wall,
        "baseline_events_per_cpu_s": n / cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", nargs="+", default=["spot", "usdm"], choices=sorted(FILES))
    args = ap.parse_args()
    rows = []
    for market in args.markets:
        rec = load_recording([WS / f for f in FILES[market]])
        busy, start = rec.busiest_minute()
        busy_rate = busy / 60.0
        row: dict[str, Any] = {
            "market": market,
            "messages": len(rec.messages),
            "busy_minute_messages": busy,
            "busy_minute_start_recv_ns": start,
            "busy_rate_per_s": busy_rate,
            "target_events_per_s": TARGET_X * busy_rate,
        }
        row.update(asyncio.run(_baseline(rec)))
        row.update(run_node(rec))
        row["node_vs_busy_minute_x"] = row["node_events_per_s"] / busy_rate
        row["node_cpu_vs_busy_minute_x"] = row["node_events_per_cpu_s"] / busy_rate
        row["node_vs_baseline"] = row["node_events_per_s"] / row["baseline_events_per_s"]
        row["target_met_wall"] = row["node_events_per_s"] >= row["target_events_per_s"]
        row["target_met"] = row["node_events_per_cpu_s"] >= row["target_events_per_s"]
        rows.append(row)
    result = {
        "name": "bench_venue",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "target": f">= {TARGET_X:g}x the busiest minute of the recording",
        "rows": rows,
        "target_met": all(r["target_met"] for r in rows),
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_venue.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(
        f"{'':<7}{'busy minute':>20}{'target':>9}{'baseline (raw WS)':>20}{'node':>20}{'x busy':>14}"
    )
    print(
        f"{'market':<7}{'msgs':>8}{'msgs/s':>12}{'ev/s':>9}{'ev/s':>10}{'ev/cpu-s':>10}"
        f"{'ev/s':>10}{'ev/cpu-s':>10}{'wall':>7}{'cpu':>7}"
    )
    for r in rows:
        print(
            f"{r['market']:<7}{r['busy_minute_messages']:>8,}{r['busy_rate_per_s']:>12,.0f}"
            f"{r['target_events_per_s']:>9,.0f}{r['baseline_events_per_s']:>10,.0f}"
            f"{r['baseline_events_per_cpu_s']:>10,.0f}{r['node_events_per_s']:>10,.0f}"
            f"{r['node_events_per_cpu_s']:>10,.0f}{r['node_vs_busy_minute_x']:>7.1f}"
            f"{r['node_cpu_vs_busy_minute_x']:>7.1f}"
        )
    print(f"load average {result['load_average_1m']:.1f} on {result['cpus']} CPUs")
    print(f"target {result['target']}: {'met' if result['target_met'] else 'NOT met'} (CPU time)")
    print(out)


if __name__ == "__main__":
    main()
