"""``make demo`` wall time against its 15-minute budget on 2 cores, step by step.

Runs ``python -m ops.demo`` (the Makefile's recipe) at its default size as a child process,
then reads ``OUT/demo.json``: the wall seconds of every step (synthesise, sweep, promote, Serve
start, backtest, acceptance, report, node replay, rollup, stop). The baseline in the same run
is the budget itself: each step's share of 900 s, and the total against it. The machine's load
average before and after is recorded (the box is shared). Writes bench/results/bench_demo.json
and prints a table; exit 1 when the demo fails or takes longer than the budget.

Usage: ``python bench/bench_demo.py [--out DIR] [demo options, e.g. --day-seconds 3600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 900.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo_run")
    args, demo_args = ap.parse_known_args()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", "ops.demo", "--out", str(args.out), *demo_args],
                          cwd=REPO, check=False).returncode  # fmt: skip
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    doc = json.loads((args.out / "demo.json").read_text()) if code == 0 else {}
    steps = doc.get("steps", [])

    table = Table(title=f"bench_demo: make demo = {wall:.0f} s (budget {BUDGET_S:.0f} s, 2 cores)")
    for col in ("step", "seconds", "share of budget", "exit"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in steps:
        table.add_row(s["title"], f"{s['seconds']:.1f}", f"{s['seconds'] / BUDGET_S:.1%}",
                      str(s["exit_code"]))  # fmt: skip
    table.add_row("total (process wall)", f"{wall:.1f}", f"{wall / BUDGET_S:.1%}",
                  str(code), style="bold")  # fmt: skip
    Console().print(table)
    results = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": load_after,
        "demo_args": demo_args,
        "exit_code": code,
        "wall_s": wall,
        "budget_s": BUDGET_S,
        "within_budget": code == 0 and wall < BUDGET_S,
        "steps": steps,
        "figures": {k: doc.get(k) for k in ("held_out_day", "processes_checked")},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_demo.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS / 'bench_demo.json'}")
    return 0 if results["within_budget"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
