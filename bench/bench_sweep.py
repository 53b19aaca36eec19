"""Sweep parallelism: the same trials through Ray Tune (2 at a time) vs one after another in
this process without Tune.

Same process, same synthetic catalog and folds (features extracted and cached before timing),
same seed and trials, the sweep's default search space and EM iterations. Records both wall
times, the speedup and whether both pick the same best config; ``--tune-sequential`` also times
Tune with one trial at a time (Tune's own overhead). Target on 2 CPUs: >= 1.6x and an identical
best config.

    .venv/bin/python bench/bench_sweep.py [--trials 8] [--day-seconds 21600] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cluster import shutdown
from training.data.sources.synth import SynthConfig
from training.data.sources.synth import synth
from training.pipelines.sweep import SweepConfig
from training.pipelines.sweep import best_row
from training.pipelines.sweep import plan_sweep
from training.pipelines.sweep import run_sequential
from training.pipelines.sweep import run_sweep

TARGET = 1.6


def _record(wall_s: float, rows: list[dict[str, Any]], n_folds: int) -> dict[str, Any]:
    best = best_row(rows, n_folds)
    return {
        "wall_s": wall_s,
        "best_trial": best["trial"],
        "best_objective": best["objective"],
        "best_config": {k: best[k] for k in best if k in rows[0] and k in _CONFIG_KEYS},
        "trial_fit_s": {r["trial"]: sum(v for k, v in r.items() if k.endswith("_fit_s") and v)
                        for r in rows},
    }  # fmt: skip


_CONFIG_KEYS: set[str] = set()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--day-seconds", type=int, default=6 * 3600)
    ap.add_argument("--tune-sequential", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp) / "catalog"
        synth(SynthConfig(days=3, seed=1, day_seconds=args.day_seconds), root)
        try:
            cfg = SweepConfig(
                num_samples=args.trials, seed=11, scheduler="fifo", maker_bps=0.0, taker_bps=0.0
            )
            plan = plan_sweep(root, cfg, num_cpus=2, verbose=0)  # not part of the timing
            _CONFIG_KEYS.update(plan.trials[0])
            n_folds = len(plan.folds)

            t0 = time.perf_counter()
            rows = run_sequential(plan)
            runs["loop (no Tune)"] = _record(time.perf_counter() - t0, rows, n_folds)
            concurrency = [("tune x2", 2)] + ([("tune x1", 1)] if args.tune_sequential else [])
            for label, conc in concurrency:
                tcfg = SweepConfig(
                    num_samples=args.trials,
                    seed=11,
                    scheduler="fifo",
                    maker_bps=0.0,
                    taker_bps=0.0,
                    max_concurrent=conc,
                )
                t0 = time.perf_counter()
                res = run_sweep(
                    root, tcfg, out_dir=Path(tmp) / label, register=False, verbose=0, plan=plan
                )
                runs[label] = _record(time.perf_counter() - t0, res.trials.to_pylist(), n_folds)
        finally:
            shutdown()
    base, par = runs["loop (no Tune)"], runs["tune x2"]
    speedup = base["wall_s"] / par["wall_s"]
    same = base["best_config"] == par["best_config"]
    result = {
        "bench": "bench_sweep",
        "trials": args.trials,
        "day_seconds": args.day_seconds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runs": runs,
        "speedup": speedup,
        "same_best_config": same,
        "target_speedup": TARGET,
        "meets_target": bool(speedup >= TARGET and same),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_sweep.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    table = Table(title=f"sweep: {args.trials} trials, 3 synthetic days of {args.day_seconds} s")
    for col in ("run", "wall s", "sum of trial fit s", "best trial", "objective"):
        table.add_column(col)
    for label, r in runs.items():
        fit = sum(r["trial_fit_s"].values())
        table.add_row(
            label, f"{r['wall_s']:.1f}", f"{fit:.1f}", r["best_trial"], f"{r['best_objective']:.3f}"
        )
    table.add_row(
        "speedup", f"{speedup:.2f}x (target {TARGET}x)", "", "same" if same else "DIFFERENT", ""
    )
    Console().print(table)


if __name__ == "__main__":
    main()
