"""The trade simulator against the Nautilus backtest: agreement on held-out days, and speed.

Per seed: a synthetic market (``--market``, default usdm, realistic preset) of 3 days; a model
trained with ``nhmm train``'s pipeline defaults (horizon chosen on the training rows) on the
first two; then the third (held-out) day is backtested in Nautilus (``run_backtest``, the exact
strategy, queue fills) and replayed by the simulator (``simulate_backtest``: same features, same decision
rules, same cost model). Agreement target (issue 11): per-day net PnL of the same sign on >= 5
of 6 days and totals within 25 %. Speed: simulator wall time vs the backtest's ``run_s`` (the
engine run) and ``wall_s``, in the same process.

Entry *attempts* differ (Nautilus makes more) while fills agree: traced on seed 14 (3-hour days,
held-out day 3: 38 Nautilus entries, 24 simulated; fills 22 vs 21), 12 of the 38 Nautilus
entries were REJECTED by the venue as post-only orders that would have crossed when they
arrived (the book moved between the sample's snapshot and the order's arrival after the
modelled latency; the synthetic feed has ~170 events a second), 6 were cancelled by the TTL or the flat/opposite rule, 20
filled. The strategy then re-enters after the cooldown. The simulator has no sub-sample book,
so it cannot reject such an entry: it rests it, and the next sample's trades fill it. Fills
agree in count because the position cap (10 entries of the minimum size) binds in both; what
differs is when and at which price the cap is reached, by a few seconds and ticks.

Writes bench/results/bench_simulator.json and prints a table.

Usage: ``python bench/bench_simulator.py [--seeds 11 12 13 14 15 16] [--day-seconds 10800]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def one(seed: int, market: str, day_seconds: int, root: Path) -> dict[str, Any]:
    import msgspec

    from node.backtest import run_backtest
    from node.backtest import simulate_backtest
    from node.config import PolicyHMMStrategyConfig
    from training.artifacts.registry import Registry
    from training.costs import CostModel
    from training.data.catalog import MarketCatalog
    from training.data.sources.synth import preset
    from training.data.sources.synth import synth
    from training.models.hmm import HMMConfig
    from training.models.labels import LabelConfig
    from training.pipelines.train import TrainConfig
    from training.pipelines.train import train

    synth(preset("realistic", market=market, days=3, seed=seed, day_seconds=day_seconds),
          root / "cat")  # fmt: skip
    catalog = MarketCatalog(root / "cat")
    sds = catalog.symbol_days()
    symbol = sds[0].instrument_id
    costs = CostModel.for_instrument(catalog.instrument(symbol))
    cfg = TrainConfig(hmm=HMMConfig(k_range=(3, 5), covariance_type="full", n_init=5, seed=0),
                      labels=LabelConfig(costs=costs), auto_horizon=True)  # fmt: skip
    bundle, test = train(catalog, symbol, [sd.day for sd in sds[:2]], cfg)
    registry = Registry(str(root / "reg"))
    registry.register(bundle)
    day = sds[2].day
    strat = PolicyHMMStrategyConfig(instrument_id=symbol, trading_enabled=True)
    summary = run_backtest(catalog, symbol, [day], "candidate", registry, root / "run", strat)
    t0 = time.perf_counter()
    sim = simulate_backtest(catalog, symbol, [day], bundle,
                            msgspec.structs.replace(strat, hold_s=summary["hold_s"]))  # fmt: skip
    sim_s = time.perf_counter() - t0
    m = sim.metrics()
    return {
        "seed": seed,
        "market": market,
        "day": day.isoformat(),
        "horizon_s": bundle.metadata["config"]["labels"]["horizon_s"],
        "backtest_net_pnl": summary["net_pnl"],
        "sim_net_pnl": m["net_pnl"],
        "backtest_fills": summary["trades"],
        "sim_fills": m["fills"],
        "backtest_entries": summary["entries"],
        "sim_entries": m["entries"],
        "backtest_run_s": summary["run_s"],
        "backtest_wall_s": summary["wall_s"],
        "sim_s": sim_s,
        "test_block_net_pnl_per_day": test["net_pnl_per_day"],
        "costs": dataclasses.asdict(costs),
    }


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    bt = [r["backtest_net_pnl"] for r in rows]
    sm = [r["sim_net_pnl"] for r in rows]
    same = sum((b > 0) == (s > 0) for b, s in zip(bt, sm, strict=True))
    tb, ts = sum(bt), sum(sm)
    rel = abs(ts - tb) / abs(tb) if tb else float("inf")
    return {
        "days": len(rows),
        "same_sign_days": same,
        "backtest_total": tb,
        "sim_total": ts,
        "total_rel_diff": rel,
        "pass": same >= len(rows) - 1 and rel <= 0.25,
        "speedup_vs_engine_run": sum(r["backtest_run_s"] for r in rows)
        / max(sum(r["sim_s"] for r in rows), 1e-9),
        "speedup_vs_wall": sum(r["backtest_wall_s"] for r in rows)
        / max(sum(r["sim_s"] for r in rows), 1e-9),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15, 16])
    ap.add_argument("--market", default="usdm", choices=["usdm", "spot"])
    ap.add_argument("--day-seconds", type=int, default=10_800)
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="nhmm-sim-") as tmp:
            rows.append(one(seed, args.market, args.day_seconds, Path(tmp)))
        print(json.dumps(rows[-1]), flush=True)
        result = {"bench": "bench_simulator", "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "day_seconds": args.day_seconds, "rows": rows, "agreement": agreement(rows)}  # fmt: skip
        (RESULTS / "bench_simulator.json").write_text(json.dumps(result, indent=2))
    table = Table(title="bench_simulator: held-out day, Nautilus backtest vs trade simulator")
    for col in ("seed", "horizon", "backtest net", "sim net", "fills bt/sim", "entries bt/sim",
                "engine s", "sim s"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["seed"]), f"{r['horizon_s']:g}", f"{r['backtest_net_pnl']:.3f}",
                      f"{r['sim_net_pnl']:.3f}", f"{r['backtest_fills']:g}/{r['sim_fills']:g}",
                      f"{r['backtest_entries']}/{r['sim_entries']:g}",
                      f"{r['backtest_run_s']:.1f}", f"{r['sim_s']:.2f}")  # fmt: skip
    Console().print(table)
    print(json.dumps(result["agreement"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
