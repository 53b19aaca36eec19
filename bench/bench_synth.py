"""Synthetic regime market: time to generate a full day, and catalog import speed of that day.

Targets: a full 86400 s day generated in < 120 s; ``MarketCatalog.write`` of it at >= 300k
events/s on one core. Baseline measured in the same process: writing the same numpy columns as
plain Parquet with pyarrow (float64, no Nautilus schema, no fixed-point encoding) — the floor
any catalog write sits on. Writes bench/results/bench_synth.json and prints a table.

Usage: ``python bench/bench_synth.py [--quick] [--seed S]`` (``--quick``: a 6 h day).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import generate
from training.data.sources.synth import synth_instrument
from training.data.sources.synth import write_labels

RESULTS = Path(__file__).resolve().parent / "results"
GEN_TARGET_S = 120.0
WRITE_TARGET_EPS = 300_000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 6 h day instead of 24 h")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = SynthConfig(seed=args.seed, day_seconds=21_600 if args.quick else 86_400)
    inst = synth_instrument(cfg)

    t0 = time.perf_counter()
    day = next(generate(cfg, inst))
    gen_s = time.perf_counter() - t0
    ev = day.events
    n = len(ev)

    root = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        cat = MarketCatalog(root / "catalog")
        t0 = time.perf_counter()
        cat.write(inst, ev)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_labels(cat.labels_path(SymbolDay(inst.id.value, day.day)), day.labels)
        labels_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        for name, cols in (("deltas", ev.deltas), ("trades", ev.trades)):
            table = pa.table({c: getattr(cols, c) for c in cols.names()})
            pq.write_table(table, root / f"plain_{name}.parquet", row_group_size=100_000)
        plain_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)

    total_s = gen_s + write_s + labels_s
    rows = [
        ("generate (numpy)", gen_s, n / gen_s),
        ("MarketCatalog.write", write_s, n / write_s),
        ("labels parquet", labels_s, None),
        ("generate + write + labels", total_s, n / total_s),
        ("baseline: plain pyarrow parquet", plain_s, n / plain_s),
    ]
    results = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "day_seconds": cfg.day_seconds,
        "seed": cfg.seed,
        "events": n,
        "deltas": len(ev.deltas),
        "trades": len(ev.trades),
        "messages": day.messages,
        "messages_per_s": day.messages / cfg.day_seconds,
        "regime_seconds": day.regime_seconds,
        "timings": {name: {"seconds": s, "events_per_s": eps} for name, s, eps in rows},
        "targets": {
            "generate_day_s": {
                "target": GEN_TARGET_S,
                "measured": gen_s * 86_400 / cfg.day_seconds,
                "met": gen_s * 86_400 / cfg.day_seconds < GEN_TARGET_S,
            },
            "catalog_write_events_per_s": {
                "target": WRITE_TARGET_EPS,
                "measured": n / write_s,
                "met": n / write_s >= WRITE_TARGET_EPS,
            },
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_synth.json"
    out.write_text(
        json.dumps(results, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"
    )

    print(
        f"synthetic day: {cfg.day_seconds} s, {n:,} events ({len(ev.deltas):,} deltas, "
        f"{len(ev.trades):,} trades), {day.messages / cfg.day_seconds:.1f} msg/s"
    )
    print(f"{'stage':34s} {'seconds':>9s} {'events/s':>12s}")
    for name, s, eps in rows:
        print(f"{name:34s} {s:9.2f} {'-' if eps is None else f'{eps:,.0f}':>12s}")
    for name, t in results["targets"].items():
        print(
            f"target {name}: {t['measured']:,.1f} vs {t['target']:,.0f} -> {'met' if t['met'] else 'MISSED'}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
