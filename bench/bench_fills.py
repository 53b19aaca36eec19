"""Passive fills by fill model: fill rate and backtest speed of the queue model vs the old one.

The same passive strategy (:class:`node.fills.PassiveProbe`: 0.001 BTC post-only at the touch,
one order at a time, cancelled after 5 s) runs in the Binance L2_MBP engine
(``node.engine.binance_engine``) on the same symbol-day under three fill models:
``touch`` (the old model and the baseline: the first trade at the price fills everything),
``nautilus`` (Nautilus 1.231's own ``queue_position=True``: no cancels ahead, no fills on a
trade through the price while size is ahead, queues reset on a CLEAR) and ``queue``
(:func:`node.fills.venue_fill_config`, what ``nhmm backtest`` uses). Only ``engine.run()`` is
timed; runs alternate ``--repeats`` times and the best of each counts.

Target (set here; the issue gives none): ``queue`` events/s >= 0.7x ``touch`` on every day.
Data: the real spot BTCUSDT recording (../shared/data: 2024-08-08 23:54-24:00, 2024-08-09
00:00-00:05) and a synthetic day (``--day-seconds`` of the realistic preset).
Writes bench/results/bench_fills.json and prints a table.

Usage: ``python bench/bench_fills.py [--day-seconds 1800] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nautilus_trader.backtest.models import FillModel
from rich.console import Console
from rich.table import Table

from node.engine import binance_engine
from node.engine import symbol_day_data
from node.fills import FillOptions
from node.fills import PassiveProbe
from node.fills import PassiveProbeConfig
from node.fills import passive_fill_rate
from node.fills import venue_fill_config
from training.data.catalog import MarketCatalog
from training.data.sources.binance_ws import import_ws
from training.data.sources.synth import preset
from training.data.sources.synth import synth

RESULTS = Path(__file__).resolve().parent / "results"
WS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-ws"
MODELS = ("touch", "nautilus", "queue")
TARGET_RATIO = 0.7


def venue_kwargs(model: str, seed: int) -> dict[str, Any]:
    if model == "nautilus":
        fill_model = FillModel(random_seed=seed)
        return {"fill_model": fill_model, "queue_position": True, "liquidity_consumption": True}
    return venue_fill_config(FillOptions(model, seed=seed))  # type: ignore[arg-type]


def run_once(instrument: Any, data: list, model: str, seed: int) -> dict[str, Any]:
    kwargs = venue_kwargs(model, seed)
    engine = binance_engine(
        instrument, "spot", trader_id="BENCH-001", starting_quote=1e7, starting_base=100.0,
        **kwargs,
    )  # fmt: skip
    engine.add_data(data)
    engine.add_strategy(PassiveProbe(PassiveProbeConfig(instrument_id=instrument.id)))
    t0 = time.perf_counter()
    engine.run()
    run_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "run_s": run_s,
        "events": len(data),
        "events_per_s": len(data) / run_s,
        **passive_fill_rate(engine.trader.generate_orders_report()),
        "fills": len(engine.trader.generate_fills_report()),
    }
    tracker = (kwargs.get("modules") or [None])[0]
    if tracker is not None:
        out |= {k: getattr(tracker, k) for k in ("late_trades", "grants_unused", "book_crosses")}
    engine.dispose()
    return out


def bench_day(name: str, catalog: MarketCatalog, sd: Any, repeats: int, seed: int) -> dict:
    instrument = catalog.instrument(sd.instrument_id)
    data = [item for items in symbol_day_data(catalog, sd) for item in items]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    for r in range(repeats):
        for model in MODELS:
            print(f"[{name}] repeat {r + 1}/{repeats}: {model} ...", flush=True)
            runs[model].append(run_once(instrument, data, model, seed))
    best = {m: max(rs, key=lambda x: x["events_per_s"]) for m, rs in runs.items()}
    for m, rs in runs.items():  # the fill figures must not depend on the run
        if len({(x["passive_orders"], x["passive_fill_rate"]) for x in rs}) != 1:
            raise RuntimeError(f"{name}/{m}: fills differ between repeats: {rs}")
    ratio = best["queue"]["events_per_s"] / best["touch"]["events_per_s"]
    return {
        "symbol_day": str(sd),
        "models": best,
        "all_runs": runs,
        "speed_ratio_queue_vs_touch": ratio,
        "target": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day-seconds", type=int, default=1800, help="synthetic day length")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    days: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [WS_DIR / "spot_btcusdt_20240808.gz", WS_DIR / "spot_btcusdt_20240809.gz"]
        import_ws(files, root / "real", market="spot")
        real = MarketCatalog(root / "real")
        for sd in real.symbol_days("BTCUSDT"):
            days[f"real {sd.day}"] = bench_day(f"real {sd.day}", real, sd, args.repeats, args.seed)
        synth(preset("realistic", days=1, seed=args.seed, day_seconds=args.day_seconds),
              root / "synth")  # fmt: skip
        syn = MarketCatalog(root / "synth")
        sd = syn.symbol_days("BTCUSDT")[0]
        days["synthetic"] = bench_day("synthetic", syn, sd, args.repeats, args.seed)
    result = {
        "bench": "bench_fills",
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "args": vars(args),
        "days": days,
        "met": all(d["met"] for d in days.values()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_fills.json").write_text(json.dumps(result, indent=2))
    table = Table(title="passive fills by fill model (PassiveProbe, best of repeats)")
    for col in ("day", "model", "events/s", "posted", "filled", "fill rate (qty)", "vs touch"):
        table.add_column(col)
    for name, d in days.items():
        for m in MODELS:
            x = d["models"][m]
            rate = x["passive_fill_rate"]
            speed = x["events_per_s"] / d["models"]["touch"]["events_per_s"]
            table.add_row(name, m, f"{x['events_per_s']:,.0f}", str(x["passive_orders"]),
                          str(x["passive_orders_filled"]), "-" if rate is None else f"{rate:.3f}",
                          f"{speed:.2f}x")  # fmt: skip
    Console().print(table)
    print(f"target: queue events/s >= {TARGET_RATIO}x touch on every day: "
          f"{'met' if result['met'] else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
