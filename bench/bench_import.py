"""Binance WebSocket import speed: recordings -> sequenced book -> Nautilus catalog.

Target: >= 300k events/s on one core for the whole import (parse + sequence + write).
Baseline measured in the same process: gunzip + generic JSON parse of every line
(msgspec, no typing, no book, no catalog) — the floor of any importer. Also times
``MarketCatalog.load`` of the written days (target >= 1M events/s) against a Nautilus
``ParquetDataCatalog`` query of the same partitions (Nautilus objects).
Reports wall and CPU (process) time: the machine may be shared, CPU time is the one-core number.
Writes bench/results/bench_import.json and prints a table.

Usage: ``python bench/bench_import.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nautilus_trader.model.data import OrderBookDelta

from training.data.catalog import MarketCatalog
from training.data.sources.binance_ws import import_ws
from training.data.sources.binance_ws import iter_lines

RESULTS = Path(__file__).resolve().parent / "results"
WS = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-ws"
IMPORT_TARGET_EPS = 300_000.0
LOAD_TARGET_EPS = 1_000_000.0
SETS = {
    "spot_btcusdt (2 files)": ["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"],
    "usdm_btcusdt": ["usdm_btcusdt_20240808.gz"],
}


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best wall and best CPU seconds over ``repeat`` runs, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), out


def _parse_only(paths: list[Path]) -> int:
    dec = msgspec.json.Decoder()
    n = 0
    for p in paths:
        for line in iter_lines(p):
            sp = line.find(b" ")
            int(line[:sp])
            dec.decode(line[sp + 1 :])
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        for label, names in SETS.items():
            paths = [WS / n for n in names]
            base_w, base_c, lines = _timed(lambda paths=paths: _parse_only(paths), args.repeat)
            runs = iter(range(args.repeat))
            stem = label.split()[0]

            def run(paths: list[Path] = paths, runs: object = runs, stem: str = stem) -> object:
                return import_ws(paths, tmp / f"cat_{stem}_{next(runs)}")  # type: ignore[call-overload]

            imp_w, imp_c, result = _timed(run, args.repeat)
            report = result[0]  # type: ignore[index]
            cat = MarketCatalog(report.extra["catalog"])
            days = cat.symbol_days()
            load_w, load_c, n_loaded = _timed(
                lambda cat=cat, days=days: sum(len(cat.load(d.symbol, d.day)) for d in days),
                args.repeat,
            )
            files = [str(cat.files(d)["order_book_deltas"]) for d in days]
            nq_w, _, n_naut = _timed(
                lambda cat=cat, files=files: len(cat.nautilus.query(OrderBookDelta, files=files)),
                1,
            )
            n_load_deltas = sum(len(cat.load(d.symbol, d.day).deltas) for d in days)
            ev = report.events
            rows.append(
                {
                    "set": label,
                    "lines": lines,
                    "events": ev,
                    "deltas": report.deltas,
                    "trades": report.trades,
                    "quotes": report.quotes,
                    "gaps": report.gaps,
                    "bbo_checks": report.bbo_checks,
                    "bbo_mismatches": report.bbo_mismatches,
                    "baseline_parse_wall_s": base_w,
                    "baseline_parse_cpu_s": base_c,
                    "baseline_parse_lines_per_cpu_s": lines / base_c,  # type: ignore[operator]
                    "import_wall_s": imp_w,
                    "import_cpu_s": imp_c,
                    "import_events_per_wall_s": ev / imp_w,
                    "import_events_per_cpu_s": ev / imp_c,
                    "import_vs_baseline_cpu": imp_c / base_c,
                    "load_events": n_loaded,
                    "load_events_per_cpu_s": n_loaded / load_c,  # type: ignore[operator]
                    "load_events_per_wall_s": n_loaded / load_w,  # type: ignore[operator]
                    "nautilus_query_deltas": n_naut,
                    "nautilus_query_deltas_per_wall_s": n_naut / nq_w,  # type: ignore[operator]
                    "load_deltas_per_wall_s": n_load_deltas / load_w,
                }
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "name": "bench_import",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeat": args.repeat,
        "targets": {"import_events_per_s": IMPORT_TARGET_EPS, "load_events_per_s": LOAD_TARGET_EPS},
        "rows": rows,
        "import_target_met_cpu": all(
            r["import_events_per_cpu_s"] >= IMPORT_TARGET_EPS for r in rows
        ),
        "load_target_met_cpu": all(r["load_events_per_cpu_s"] >= LOAD_TARGET_EPS for r in rows),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_import.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    hdr = f"{'set':<24}{'events':>9}{'parse-only':>13}{'import':>13}{'import wall':>13}{'load':>13}{'nautilus q':>13}"
    print(hdr)
    print(
        f"{'':<24}{'':>9}{'lines/cpu-s':>13}{'ev/cpu-s':>13}{'ev/s':>13}{'ev/cpu-s':>13}{'deltas/s':>13}"
    )
    for r in rows:
        print(
            f"{r['set']:<24}{r['events']:>9,}{r['baseline_parse_lines_per_cpu_s']:>13,.0f}"
            f"{r['import_events_per_cpu_s']:>13,.0f}{r['import_events_per_wall_s']:>13,.0f}"
            f"{r['load_events_per_cpu_s']:>13,.0f}{r['nautilus_query_deltas_per_wall_s']:>13,.0f}"
        )
    print(
        f"target import >= {IMPORT_TARGET_EPS:,.0f} ev/s: "
        f"{'met' if result['import_target_met_cpu'] else 'NOT met'} (CPU time); "
        f"load >= {LOAD_TARGET_EPS:,.0f} ev/s: {'met' if result['load_target_met_cpu'] else 'NOT met'}"
    )
    print(out)


if __name__ == "__main__":
    main()
