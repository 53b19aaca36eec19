"""Sweep parallelism: the same trials through Tune with 2 concurrent trials vs 1 (sequential).

Same process, same synthetic catalog (3 days, features cached before timing), same seed:
records both wall times, the speedup and whether both runs pick the same best config.
Target on 2 CPUs: >= 1.6x and an identical best config.

    .venv/bin/python bench/bench_sweep.py [--trials 8] [--day-seconds 10800] [--out bench/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cluster import ClusterConfig, connect, shutdown
from training.data.catalog import MarketCatalog
from training.data.synth import SynthConfig, synth
from training.feature_cache import cached_features
from training.sweep import SearchSpace, SweepConfig, run_sweep

TARGET = 1.6
SPACE = dataclasses.replace(
    SearchSpace(), k=(3, 4), covariance_type=("diag",), n_init=(1,), n_estimators=(20, 50)
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--day-seconds", type=int, default=3 * 3600)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp) / "catalog"
        synth(SynthConfig(days=3, seed=1, day_seconds=args.day_seconds), root)
        connect(ClusterConfig(num_cpus=2))
        try:
            cat = MarketCatalog(root)
            cached_features(cat, cat.symbol_days(), progress=False)  # not part of the timing
            runs = {}
            for label, conc in (("sequential", 1), ("parallel", 2)):
                cfg = SweepConfig(
                    num_samples=args.trials,
                    seed=11,
                    space=SPACE,
                    scheduler="fifo",
                    max_concurrent=conc,
                    hmm_n_iter=30,
                    fee_bps=0.0,
                )
                t0 = time.perf_counter()
                res = run_sweep(root, cfg, out_dir=Path(tmp) / label, register=False, verbose=0)
                runs[label] = {
                    "wall_s": time.perf_counter() - t0,
                    "best_config": res.best_config,
                    "best_trial": res.best_trial,
                    "best_objective": res.best_objective,
                }
        finally:
            shutdown()
    speedup = runs["sequential"]["wall_s"] / runs["parallel"]["wall_s"]
    same = runs["sequential"]["best_config"] == runs["parallel"]["best_config"]
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
    table = Table(title=f"sweep: {args.trials} trials, 3 synthetic days")
    for col in ("run", "wall s", "best trial", "objective"):
        table.add_column(col)
    for label, r in runs.items():
        table.add_row(label, f"{r['wall_s']:.1f}", r["best_trial"], f"{r['best_objective']:.3f}")
    table.add_row(
        "speedup", f"{speedup:.2f}x (target {TARGET}x)", "same" if same else "DIFFERENT", ""
    )
    Console().print(table)


if __name__ == "__main__":
    main()
