"""Acceptance experiment "no false discovery": a sweep on a market with no edge.

Per seed: ``nhmm data synth --preset null --market usdm --days 4`` (regimes of volatility,
spread, depth and flow, nothing that predicts the sign of a move), ``nhmm sweep`` (>= 8 trials,
walk-forward on the first three days, the fourth held out as the test period), then the
candidate's ``test`` block (simulated out-of-sample net PnL per day with its day-block bootstrap
CI). Pass rule (issue 11): the CI includes 0, or the model trades fewer than 5 round trips a
day, on >= 4 of 5 seeds. USD-M fees (2/5 bp) make a false discovery easier than spot fees.

Writes bench/results/bench_null.json and prints a per-seed table.

Usage: ``python bench/bench_null.py [--seeds 1 2 3 4 5] [--trials 8] [--day-seconds 21600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from bench.bench_edge import nhmm

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def one(seed: int, trials: int, day_seconds: int, root: Path) -> dict[str, Any]:
    env = {**os.environ, "NHMM_REGISTRY": str(root / "registry")}
    t0 = time.perf_counter()
    nhmm(["data", "synth", "--preset", "null", "--market", "usdm", "--days", "4",
          "--day-seconds", str(day_seconds), "--seed", str(seed), "--out", str(root / "cat")],
         env)  # fmt: skip
    nhmm(["sweep", "--catalog", str(root / "cat"), "--num-samples", str(trials), "--seed",
          str(seed), "--test-days", "1", "--out", str(root / "sweeps"), "--num-cpus", "2"],
         env)  # fmt: skip
    [summary_path] = (root / "sweeps").glob("*/summary.json")
    s = json.loads(summary_path.read_text())
    test = s["test"]
    lo, hi = test["net_pnl_per_day_ci"]
    few = test["round_trips_per_day"] < 5
    return {
        "seed": seed,
        "best_trial": s["best_trial"],
        "horizon_s": s["best_config"]["horizon_s"],
        "search_score": s["search"]["score"],
        "test_net_pnl_per_day": test["net_pnl_per_day"],
        "test_ci": [lo, hi],
        "test_round_trips_per_day": test["round_trips_per_day"],
        "test_gross_edge_bp_per_rt": test["gross_edge_bp_per_rt"],
        "ci_includes_zero": lo <= 0.0 <= hi,
        "fewer_than_5_trades_a_day": few,
        "no_false_discovery": bool(lo <= 0.0 <= hi or few),
        "total_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--day-seconds", type=int, default=21_600)
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="nhmm-null-") as tmp:
            rows.append(one(seed, args.trials, args.day_seconds, Path(tmp)))
        print(json.dumps(rows[-1]), flush=True)
        ok = sum(r["no_false_discovery"] for r in rows)
        result = {
            "bench": "bench_null",
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "trials": args.trials,
            "day_seconds": args.day_seconds,
            "rows": rows,
            "verdict": {"no_false_discovery": ok, "n": len(rows), "pass": ok >= 4},
        }
        (RESULTS / "bench_null.json").write_text(json.dumps(result, indent=2))
    table = Table(title=f"bench_null: {args.trials}-trial sweep + test day on --preset null (usdm)")
    for col in ("seed", "best", "horizon", "search score", "test/day", "CI", "RT/day", "ok"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["seed"]), r["best_trial"], f"{r['horizon_s']:g}",
                      f"{r['search_score']:.3g}", f"{r['test_net_pnl_per_day']:.3f}",
                      f"[{r['test_ci'][0]:.3f}, {r['test_ci'][1]:.3f}]",
                      f"{r['test_round_trips_per_day']:.1f}", str(r["no_false_discovery"]))  # fmt: skip
    Console().print(table)
    print(json.dumps(result["verdict"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
