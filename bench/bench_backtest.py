"""Backtest throughput: PolicyHMMStrategy vs a do-nothing strategy on the same data, same process.

Target: events/s with the strategy >= 0.5x the do-nothing strategy's. Both run in the same
Binance L2_MBP engine (``node.backtest.venue_engine``, same fill and latency models) over the
same symbol-day (``node.engine.symbol_day_data``), subscribed to the same L2_MBP deltas and
trades; only ``engine.run()`` is timed. Runs alternate (baseline, strategy) ``--repeats`` times
and the best of each is compared, so a burst of load from other processes hurts both alike.

Data: a synthetic day (``--day-seconds`` of the ``--preset`` market, default realistic) with a
model trained on the two synthetic days before it (``--model bundle``: ``make_bundle``);
``--real`` adds the real spot BTCUSDT recording 2024-08-09 (../shared/data) with the same model.
Writes bench/results/bench_backtest.json and prints a table.

Usage: ``python bench/bench_backtest.py [--day-seconds 3600] [--repeats 2] [--real]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy
from rich.console import Console
from rich.table import Table

from node.backtest import VenueOptions
from node.backtest import venue_engine
from node.config import PolicyHMMStrategyConfig
from node.engine import symbol_day_data
from node.strategy import PolicyHMMStrategy
from serving.client import InProcessModelClient
from training.data.catalog import MarketCatalog
from training.data.catalog import SymbolDay
from training.data.sources.synth import PRESETS
from training.data.sources.synth import preset
from training.data.sources.synth import synth

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 0.5
WS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-ws"


class NullStrategy(Strategy):
    """Subscribes to what PolicyHMMStrategy subscribes to and does nothing but count."""

    def __init__(self, instrument_id: str) -> None:
        super().__init__()
        self.instrument_id = InstrumentId.from_str(instrument_id)
        self.events = 0

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP, managed=False)
        self.subscribe_trade_ticks(self.instrument_id)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.events += len(deltas.deltas)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.events += 1


def run_once(
    catalog: MarketCatalog,
    sd: SymbolDay,
    make_strategy: Any,
    venue: VenueOptions,
) -> dict[str, Any]:
    """One engine over one symbol-day with one strategy; times ``engine.run()`` only."""
    instrument = catalog.instrument(sd.instrument_id)
    engine = venue_engine(instrument, "spot", venue, trader_id="BENCH-001")
    try:
        n_data = 0
        for items in symbol_day_data(catalog, sd):
            engine.add_data(items)
            n_data += len(items)
        strategy = make_strategy()
        engine.add_strategy(strategy)
        t0 = time.perf_counter()
        engine.run()
        wall = time.perf_counter() - t0
        fills = len(engine.trader.generate_fills_report())
    finally:
        engine.dispose()
    events = strategy.events if isinstance(strategy, NullStrategy) else strategy.feed.events
    out = {"data": n_data, "events": events, "wall_s": wall, "events_per_s": events / wall}
    if isinstance(strategy, PolicyHMMStrategy):
        out |= {
            "samples": len(strategy.timeline),
            "decisions": strategy.decisions,
            "orders": strategy.orders_submitted,
            "fills": fills,
        }
    return out


def bench_day(
    name: str,
    catalog: MarketCatalog,
    sd: SymbolDay,
    model: InProcessModelClient,
    repeats: int,
    state_dir: Path,
) -> dict[str, Any]:
    venue = VenueOptions()
    cfg = PolicyHMMStrategyConfig(
        instrument_id=sd.instrument_id,
        market="spot",
        trading_enabled=True,
        state_dir=str(state_dir),
        model_ref=model.version,
    )
    base_runs, strat_runs = [], []
    for i in range(repeats):
        print(f"[{name}] repeat {i + 1}/{repeats}: do-nothing strategy ...", flush=True)
        base_runs.append(run_once(catalog, sd, lambda: NullStrategy(sd.instrument_id), venue))
        print(f"[{name}] repeat {i + 1}/{repeats}: PolicyHMMStrategy ...", flush=True)
        shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True)
        strat_runs.append(run_once(catalog, sd, lambda: PolicyHMMStrategy(cfg, model=model), venue))
    base = max(base_runs, key=lambda r: r["events_per_s"])
    strat = max(strat_runs, key=lambda r: r["events_per_s"])
    if base["events"] != strat["events"] or base["events"] != base["data"]:
        raise RuntimeError(
            f"{name}: events differ: baseline {base['events']}, strategy {strat['events']}, "
            f"data {base['data']}"
        )
    ratio = strat["events_per_s"] / base["events_per_s"]
    return {
        "symbol_day": str(sd),
        "baseline": base,
        "strategy": strat,
        "all_runs": {"baseline": base_runs, "strategy": strat_runs},
        "ratio": ratio,
        "target": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
    }


def trained_model(
    root: Path, day_seconds: int, seed: int, kind: str, market: str = "realistic"
) -> tuple[MarketCatalog, SymbolDay, InProcessModelClient, dict[str, Any]]:
    """Three synthetic days; a model trained on the first two, evaluated on the third (the one
    benchmarked), at the instrument's maker fee and a 300 s label horizon (or ``make_bundle``)."""
    cat_root = root / "synth"
    synth(preset(market, days=3, seed=seed, day_seconds=day_seconds), cat_root)
    catalog = MarketCatalog(cat_root)
    sds = catalog.symbol_days("BTCUSDT")
    info: dict[str, Any] = {"kind": kind, "preset": market}
    if kind == "bundle":
        from serving.testing import make_bundle

        bundle, _ = make_bundle(seed)
    else:
        from training.costs import CostModel
        from training.models.hmm import HMMConfig
        from training.models.labels import LabelConfig
        from training.pipelines.train import TrainConfig
        from training.pipelines.train import train

        costs = CostModel.for_instrument(catalog.instrument("BTCUSDT"))
        config = TrainConfig(
            hmm=HMMConfig(k_range=(3, 4), covariance_type="diag", n_init=2),
            labels=LabelConfig(horizon_s=300.0, costs=costs),
        )
        t0 = time.perf_counter()
        bundle, metrics = train(catalog, "BTCUSDT", [sd.day for sd in sds], config)
        info |= {"train_s": time.perf_counter() - t0, "maker_bps": costs.maker_bps,
                 "horizon_s": 300.0}  # fmt: skip
        info["metrics"] = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    return catalog, sds[2], InProcessModelClient(bundle), info


def real_day(root: Path) -> tuple[MarketCatalog, SymbolDay]:
    from training.data.sources.binance_ws import import_ws

    files = [WS_DIR / "spot_btcusdt_20240808.gz", WS_DIR / "spot_btcusdt_20240809.gz"]
    import_ws(files, root / "real", market="spot")
    catalog = MarketCatalog(root / "real")
    sd = next(s for s in catalog.symbol_days("BTCUSDT") if s.day == datetime.date(2024, 8, 9))
    return catalog, sd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day-seconds", type=int, default=3600, help="synthetic day length")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model", choices=["train", "bundle"], default="train")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="realistic", help="synth market")
    ap.add_argument("--real", action="store_true", help="also the real spot day 2024-08-09")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_backtest_"))
    try:
        catalog, sd, model, model_info = trained_model(
            root, args.day_seconds, args.seed, args.model, args.preset
        )
        days = {"synthetic": bench_day("synthetic", catalog, sd, model, args.repeats, root / "s1")}
        if args.real:
            rcat, rsd = real_day(root)
            days["real_spot"] = bench_day("real_spot", rcat, rsd, model, args.repeats, root / "s2")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    results = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "day_seconds": args.day_seconds,
        "repeats": args.repeats,
        "seed": args.seed,
        "model": model_info | {"version": model.version},
        "days": days,
        "target_ratio": TARGET_RATIO,
        "met": all(d["met"] for d in days.values()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_backtest.json"
    out.write_text(
        json.dumps(results, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"
    )

    table = Table(title="backtest events/s: PolicyHMMStrategy vs do-nothing (same engine, data)")
    for col in ("day", "strategy", "events", "wall s", "events/s", "ratio", "orders / fills"):
        table.add_column(col, justify="left" if col in ("day", "strategy") else "right")
    for name, d in days.items():
        b, s = d["baseline"], d["strategy"]
        table.add_row(
            name, "do-nothing", f"{b['events']:,}", f"{b['wall_s']:.2f}",
            f"{b['events_per_s']:,.0f}", "1.00", "-",
        )  # fmt: skip
        table.add_row(
            name, "PolicyHMMStrategy", f"{s['events']:,}", f"{s['wall_s']:.2f}",
            f"{s['events_per_s']:,.0f}",
            f"[{'green' if d['met'] else 'red'}]{d['ratio']:.2f}x",
            f"{s['orders']} / {s['fills']}",
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        f"target >= {TARGET_RATIO}x: {'met' if results['met'] else 'MISSED'}; wrote {out}"
    )


if __name__ == "__main__":
    main()
