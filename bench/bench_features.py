"""FEATURES_V1 throughput: offline extraction vs the online FeatureActor in a BacktestEngine.

Same data, same process: the real spot BTCUSDT recording (two files, one stream) and a synthetic
regime day, imported into a temporary catalog. Offline = ``FeatureEngine.run`` over
``MarketCatalog.load`` columns (best of 3, CPU time of this process = per core; wall time too);
online = the actor in a real ``BacktestEngine`` (L2_MBP, buffered deltas), run time only.
Also records the parity (max abs difference of every output). Target: offline >= 1M events/s/core.

    .venv/bin/python bench/bench_features.py [--synth-seconds 7200] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from node.feature_actor import backtest_features
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.sources.binance_ws import import_ws
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import synth
from training.features import FeatureEngine
from training.features import FeatureSample
from training.features import samples_to_columns
from training.features import schema_for
from training.features.offline import market_of

REPO = Path(__file__).resolve().parents[1]
WS = REPO.parent / "shared" / "data" / "binance-ws"
TARGET = 1_000_000.0


def offline(cat: MarketCatalog, sd: SymbolDay, repeats: int) -> tuple[list[FeatureSample], dict]:
    schema = schema_for(market_of(sd.instrument_id))
    t0 = time.perf_counter()
    ev = cat.load(sd.instrument_id, sd.day)
    load_s = time.perf_counter() - t0
    n = len(ev.deltas) + len(ev.trades)
    best_cpu = best_wall = float("inf")
    samples: list[FeatureSample] = []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        samples = FeatureEngine(schema).run(ev.deltas, ev.trades)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return samples, {
        "events": n,
        "samples": len(samples),
        "load_s": load_s,
        "cpu_s": best_cpu,
        "wall_s": best_wall,
        "events_per_s_cpu": n / best_cpu,
        "events_per_s_wall": n / best_wall,
    }


def online(cat: MarketCatalog, sd: SymbolDay) -> tuple[list[FeatureSample], dict]:
    schema = schema_for(market_of(sd.instrument_id))
    c0 = time.process_time()
    samples, stats = backtest_features(cat, sd, schema)
    cpu = time.process_time() - c0
    return samples, {
        "events": int(stats["events"]),
        "setup_s": stats["load_s"],
        "run_s": stats["run_s"],
        "cpu_s_total": cpu,
        "events_per_s_wall": stats["events"] / stats["run_s"],
    }


def parity(a: list[FeatureSample], b: list[FeatureSample], nf: int) -> float:
    ca, cb = samples_to_columns(a, nf), samples_to_columns(b, nf)
    if len(ca["ts"]) != len(cb["ts"]) or not np.array_equal(ca["ts"], cb["ts"]):
        return float("inf")
    worst = 0.0
    for k in ca:
        if ca[k].dtype.kind == "f":
            worst = max(worst, float(np.abs(ca[k] - cb[k]).max(initial=0.0)))
        elif not np.array_equal(ca[k], cb[k]):
            return float("inf")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth-seconds", type=int, default=7200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalog"
        import_ws([WS / "spot_btcusdt_20240808.gz", WS / "spot_btcusdt_20240809.gz"], root)
        synth(SynthConfig(day_seconds=args.synth_seconds, seed=1, symbol="ETHUSDT"), root)
        cat = MarketCatalog(root)
        for sd in cat.symbol_days():
            s_off, off = offline(cat, sd, args.repeats)
            s_on, on = online(cat, sd)
            nf = len(schema_for(market_of(sd.instrument_id)).names)
            rows.append(
                {
                    "data": "synthetic" if sd.symbol == "ETHUSDT" else "real spot recording",
                    "symbol_day": str(sd),
                    "offline": off,
                    "online_backtest": on,
                    "speedup_wall": off["events_per_s_wall"] / on["events_per_s_wall"],
                    "parity_max_abs_diff": parity(s_off, s_on, nf),
                }
            )
    total_ev = sum(r["offline"]["events"] for r in rows)
    total_cpu = sum(r["offline"]["cpu_s"] for r in rows)
    result = {
        "bench": "bench_features",
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "target_offline_events_per_s_per_core": TARGET,
        "offline_events_per_s_cpu_overall": total_ev / total_cpu,
        "meets_target": total_ev / total_cpu >= TARGET,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_features.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    head = f"{'symbol-day':34} {'events':>9} {'offline ev/s cpu':>17} {'wall':>11}"
    head += f" {'actor ev/s':>11} {'x':>6} {'parity':>8}"
    print(head)
    for r in rows:
        o, n = r["offline"], r["online_backtest"]
        print(
            f"{r['symbol_day']:34} {o['events']:>9,} {o['events_per_s_cpu']:>17,.0f} "
            f"{o['events_per_s_wall']:>11,.0f} {n['events_per_s_wall']:>11,.0f} "
            f"{r['speedup_wall']:>6.1f} {r['parity_max_abs_diff']:>8.1e}"
        )
    print(
        f"offline overall {result['offline_events_per_s_cpu_overall']:,.0f} events/s/core "
        f"(target {TARGET:,.0f}: {'met' if result['meets_target'] else 'NOT met'}) -> {path}"
    )


if __name__ == "__main__":
    main()
