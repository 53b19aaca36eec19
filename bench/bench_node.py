"""The live node on the loopback venue: market events/s it keeps up with, and sample -> order
latency (issue 13).

A real ``run_live`` (node/live/runner.py) in this process: the REAL Nautilus Binance adapter,
``PolicyHMMStrategy`` with an in-process model (trained here on a synthetic spot catalog with
:func:`training.pipelines.train.train`), the in-process :class:`~node.venue.VenueThread`
replaying the spot recording of ``bench_venue`` at increasing ``speed``.

(a) Keeping up. A probe actor added to the node counts every market event it processes
(quotes, trades, delta batches after the snapshot) and the exchange time of the last one; a
sampler thread reads the venue's replay clock (the latest exchange time it sent) every 0.2 s.
Lag = (venue time - node's last processed event time) / speed, in wall seconds. The node keeps
up at a speed when the max lag is <= 1 s, the venue itself is not behind (``behind_s``) and the
node processed >= 99 % of the frames sent. At speed S the busiest minute arrives at S x its
rate, so the highest speed kept up x the busy minute (bench_venue's notion, imported) is the
event rate the node keeps up with; the target is >= 20x.

(b) Sample -> order submitted. The strategy's ``submit_order`` is wrapped (on the instance, in
this process) to note the wall time and the sample it acts on (its exchange ``ts``); the probe
maps each event's exchange ``ts_event`` to the node's receive time ``ts_init``. Latency = submit
time - receive time of the market event that completed the sample (model call, decision and
order build included; the exchange->node network hop excluded).

Baseline, same process: the slowest speed of the ladder (10x, what the live tests run): the
latency there is the node unloaded; each faster speed is compared with it (how load degrades
it). Writes bench/results/bench_node.json and prints a table.

Usage: ``python bench/bench_node.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId

import node.live.builder as live_builder
import node.venue as venue_pkg
from bench.bench_venue import FILES
from bench.bench_venue import TARGET_X
from bench.bench_venue import WS
from node.venue import load_recording

RESULTS = Path(__file__).resolve().parent / "results"
LADDER = (10.0, 20.0, 40.0, 80.0, 160.0)
QUICK_LADDER = (10.0, 40.0, 160.0)
MAX_LAG_S = 1.0


class _ProbeConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId


class _Probe(Actor):
    """Counts the market events the node processes; maps exchange time -> receive time."""

    def __init__(self, config: _ProbeConfig) -> None:
        super().__init__(config)
        self.n = self.batches = 0
        self.first_wall = self.last_wall = 0.0
        self.last_event_ms = 0
        self.ts_event: list[int] = []
        self.ts_init: list[int] = []

    def on_start(self) -> None:
        iid = self.config.instrument_id
        self.subscribe_quote_ticks(iid)
        self.subscribe_trade_ticks(iid)
        self.subscribe_order_book_deltas(iid, book_type=BookType.L2_MBP)

    def _seen(self, ts_event: int, ts_init: int) -> None:
        now = time.perf_counter()
        if not self.n:
            self.first_wall = now
        self.n += 1
        self.last_wall = now
        self.last_event_ms = max(self.last_event_ms, ts_event // 1_000_000)
        self.ts_event.append(ts_event)
        self.ts_init.append(ts_init)

    def received_ns(self, sample_ts: list[int]) -> np.ndarray:
        """Receive time of the first event at or after each sample time: the one that made the
        feature actor emit it (a sample's ``ts`` is its grid time)."""
        seen = np.maximum.accumulate(np.asarray(self.ts_event, dtype=np.int64))
        idx = np.searchsorted(seen, np.asarray(sample_ts, dtype=np.int64), side="left")
        init = np.asarray(self.ts_init, dtype=np.int64)
        return np.where(idx < len(init), init[np.minimum(idx, len(init) - 1)], -1)

    def on_quote_tick(self, tick: Any) -> None:
        self._seen(tick.ts_event, tick.ts_init)

    def on_trade_tick(self, tick: Any) -> None:
        self._seen(tick.ts_event, tick.ts_init)

    def on_order_book_deltas(self, deltas: Any) -> None:
        self.batches += 1
        if self.batches > 1:  # the first is the REST snapshot
            self._seen(deltas.ts_event, deltas.ts_init)


class _Capture:
    """Hooks into one ``run_live`` (this process only): the built node gets the probe, the
    strategy's ``submit_order`` is timed, the venue thread is kept for its clock."""

    def __init__(self) -> None:
        self.probe: _Probe | None = None
        self.venue: Any = None
        self.submits: list[tuple[int, int]] = []  # (sample ts, wall ns at submit)
        self.strategy: Any = None

    def __enter__(self) -> _Capture:
        self._build, self._running = live_builder.build_node, venue_pkg.running
        cap = self

        def build_node(cfg: Any, data: Any, exec_: Any, strategies: Any, actors: Any = ()) -> Any:
            strategy = cap.strategy = strategies[0]
            submit = strategy.submit_order

            def timed(order: Any, *args: Any, **kwargs: Any) -> None:
                cap.submits.append((strategy._priced.ts_ns, time.time_ns()))
                submit(order, *args, **kwargs)

            strategy.submit_order = timed
            cap.probe = _Probe(_ProbeConfig(instrument_id=InstrumentId.from_str(cfg.instrument_id)))
            return cap._build(cfg, data, exec_, strategies, [*actors, cap.probe])

        def running(config: Any, recording: Any = None) -> Any:
            cm = cap._running(config, recording)
            enter = cm.__enter__

            def entered() -> Any:
                cap.venue = enter()
                return cap.venue

            cm.__enter__ = entered
            return cm

        live_builder.build_node, venue_pkg.running = build_node, running
        return self

    def __exit__(self, *exc: object) -> None:
        live_builder.build_node, venue_pkg.running = self._build, self._running


def train_model(root: Path) -> Path:
    """A spot model (3 x 30 min synthetic days, short warm-up) registered as ``candidate``."""
    from training.artifacts.registry import Registry
    from training.costs import CostModel
    from training.data.catalog import MarketCatalog
    from training.data.sources.synth import SynthConfig
    from training.data.sources.synth import synth
    from training.features import schema_for
    from training.models.hmm import HMMConfig
    from training.models.labels import LabelConfig
    from training.models.policy import PolicyConfig
    from training.pipelines.train import TrainConfig
    from training.pipelines.train import train

    synth(SynthConfig(days=3, seed=1, day_seconds=1800), root / "catalog")
    catalog = MarketCatalog(root / "catalog")
    days = [sd.day for sd in catalog.symbol_days("BTCUSDT")]
    cfg = TrainConfig(
        hmm=HMMConfig(k_range=(3, 3), covariance_type="diag", n_init=1),
        labels=LabelConfig(horizon_s=30.0, costs=CostModel(0.25, 0.25), min_edge_bps=0.0),
        policy=PolicyConfig(
            buy_threshold=0.34, sell_threshold=0.34, n_estimators=30, max_depth=4, subsample=1.0
        ),
    )
    schema = schema_for("spot", min_periods_s=120.0, standardise_window_s=600.0)
    bundle, _ = train(catalog, "BTCUSDT", days[:2], cfg, schema=schema)
    Registry(str(root / "registry")).register(bundle)
    return root / "registry"


def run_at(speed: float, files: list[Path], registry: Path, root: Path) -> dict[str, Any]:
    """One replay of ``files`` at ``speed`` through ``run_live``; lag, counts and latencies."""
    from node.config import PolicyHMMStrategyConfig
    from node.live.config import LiveConfig
    from node.live.runner import run_live

    state = root / f"state-{speed:g}"
    strat = PolicyHMMStrategyConfig(
        instrument_id="BTCUSDT.BINANCE", trading_enabled=True, min_conf=0.5,
        max_spread_bp_base=5.0, vwap_anchor_bps=50.0, max_position=0.01, cooldown_s=5.0,
        latency_budget_ms=10_000.0,
    )  # fmt: skip
    cfg = LiveConfig(
        symbol="BTCUSDT", strategy=strat, model_ref="candidate", registry_root=str(registry),
        replay=tuple(str(f) for f in files), speed=speed, state_dir=state, out=state / "run",
        max_order_submit_rate="100/00:00:01", log_level="ERROR",
    )  # fmt: skip
    lags: list[float] = []
    stop = threading.Event()
    t0 = time.perf_counter()
    with _Capture() as cap:

        def sample() -> None:
            while not stop.wait(0.2):
                venue, probe = cap.venue, cap.probe
                if venue is None or probe is None or not probe.n:
                    continue
                if venue.venue.replayer.finished.is_set():
                    return
                sent_ms = venue.venue.replayer.last_ms
                lag = max(0, sent_ms - probe.last_event_ms) / 1000.0 / speed
                lags.append((time.perf_counter() - t0, lag))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_live(cfg, env={"TRADING_ENABLED": "true"}, echo=lambda _: None)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        sampler.join(5)
    probe = cap.probe
    assert probe is not None
    venue = summary["venue"] or {}
    sent = int(venue.get("frames_sent", 0))
    recv = probe.received_ns([ts for ts, _ in cap.submits]) if cap.submits else []
    lat = [(w - r) / 1e6 for (_, w), r in zip(cap.submits, recv, strict=True) if r >= 0]
    model_ms = [r["latency_ms"] for r in cap.strategy.timeline if r["latency_ms"] is not None]
    span = probe.last_wall - probe.first_wall
    at, lag_s = (np.asarray(x) for x in zip(*lags, strict=True)) if lags else ([], [])
    max_lag = float(np.max(lag_s)) if lags else float("nan")
    processed = probe.n / sent if sent else 0.0
    return {
        "speed": speed,
        "run_wall_s": wall,
        "venue_frames": sent,
        "venue_behind_s": float(venue.get("behind_s", 0.0)),
        "node_events": probe.n,
        "processed_frac": processed,
        "node_events_per_s": probe.n / span if span > 0 else 0.0,
        "lag_p50_s": float(np.median(lag_s)) if lags else float("nan"),
        "lag_p99_s": float(np.percentile(lag_s, 99)) if lags else float("nan"),
        "lag_max_s": max_lag,
        "lag_max_at_s": float(at[int(np.argmax(lag_s))]) if lags else None,
        "process_cpu_s": cpu,
        "events_per_cpu_s": probe.n / cpu,
        "kept_up": bool(
            lags
            and max_lag <= MAX_LAG_S
            and processed >= 0.99
            and float(venue.get("behind_s", 0.0)) <= MAX_LAG_S
        ),
        "samples": summary.get("samples"),
        "orders": len(cap.submits),
        "orders_timed": len(lat),
        "submit_p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "submit_p99_ms": float(np.percentile(lat, 99)) if lat else None,
        "submit_ms": lat,
        "model_p50_ms": float(np.percentile(model_ms, 50)) if model_ms else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one recording day, 3 speeds")
    args = ap.parse_args()
    busy, _ = load_recording([WS / f for f in FILES["spot"]]).busiest_minute()
    busy_rate = busy / 60.0
    files = [WS / f for f in FILES["spot"][: 1 if args.quick else None]]
    ladder = QUICK_LADDER if args.quick else LADDER
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        registry = train_model(root)
        print(f"model trained in {time.perf_counter() - t0:.1f} s", flush=True)
        for speed in ladder:
            row = run_at(speed, files, registry, root)
            row["offered_busy_events_per_s"] = speed * busy_rate
            rows.append(row)
            print(f"speed {speed:g}x: kept up {row['kept_up']}, max lag {row['lag_max_s']:.2f} s, "
                  f"{row['orders']} orders", flush=True)  # fmt: skip
            if not row["kept_up"]:
                break
    base = rows[0]
    for r in rows:
        for q in ("p50", "p99"):
            b, v = base[f"submit_{q}_ms"], r[f"submit_{q}_ms"]
            r[f"submit_{q}_vs_baseline"] = v / b if b and v is not None else None
    kept = [r["speed"] for r in rows if r["kept_up"]]
    best = max(kept, default=0.0)
    lat = [x for r in rows if r["kept_up"] for x in r["submit_ms"]]
    result = {
        "name": "bench_node",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "recording": [f.name for f in files],
        "busy_minute_messages": busy,
        "busy_rate_per_s": busy_rate,
        "target": f">= {TARGET_X:g}x the busiest minute ({TARGET_X * busy_rate:,.0f} events/s)",
        "baseline": f"speed {base['speed']:g}x (the first of the ladder)",
        "max_speed_kept_up": best,
        "kept_up_events_per_s": best * busy_rate,
        "target_met": best >= TARGET_X,
        "submit_p50_ms": float(np.percentile(lat, 50)) if lat else None,
        "submit_p99_ms": float(np.percentile(lat, 99)) if lat else None,
        "orders_timed": len(lat),
        "rows": rows,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_node.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"{'speed':>6}{'busy ev/s':>10}{'node ev/s':>10}{'ev/cpu-s':>9}{'done':>6}{'lag max':>8}"
          f"{'kept':>5}{'orders':>7}{'p50 ms':>8}{'p99 ms':>8}{'p99/base':>9}{'model':>7}")  # fmt: skip
    for r in rows:
        p50, p99, rel = r["submit_p50_ms"], r["submit_p99_ms"], r["submit_p99_vs_baseline"]
        print(
            f"{r['speed']:>5g}x{r['offered_busy_events_per_s']:>10,.0f}"
            f"{r['node_events_per_s']:>10,.0f}{r['events_per_cpu_s']:>9,.0f}{r['processed_frac']:>6.0%}{r['lag_max_s']:>7.2f}s"
            f"{'yes' if r['kept_up'] else 'NO':>5}{r['orders']:>7}"
            f"{p50 if p50 is not None else float('nan'):>8.1f}"
            f"{p99 if p99 is not None else float('nan'):>8.1f}"
            f"{rel if rel is not None else float('nan'):>9.2f}"
            f"{r['model_p50_ms'] or float('nan'):>7.1f}"
        )
    print(f"busy minute {busy_rate:,.0f} ev/s; kept up to {best:g}x = "
          f"{best * busy_rate:,.0f} ev/s; target {result['target']}: "
          f"{'met' if result['target_met'] else 'NOT met'}")  # fmt: skip
    p50, p99 = result["submit_p50_ms"], result["submit_p99_ms"]
    if p50 is not None:
        print(f"sample -> order submitted (speeds kept up, {len(lat)} orders): "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    print(f"load average {result['load_average_1m']:.1f} on {result['cpus']} CPUs")
    print(out)


if __name__ == "__main__":
    main()
