"""Choosing the strategy's defaults on seeds the acceptance never sees (issue 11, "edge found").

The defaults ``nhmm train`` + ``nhmm backtest`` run with are chosen here, on synthetic seeds
6-10 (``bench/bench_edge.py`` measures seeds 1-5; nothing is chosen on those), with the trade
simulator instead of Nautilus (it agrees with the backtest: ``bench/bench_simulator.py``).

Per seed: the market ``bench_edge`` uses (``nhmm data synth --market usdm --days 4
--day-seconds 21600``, realistic preset); features of days 1-3 from one engine; one HMM fit on
days 1-2 (``nhmm train``'s settings: k 3..5, full covariance, 5 inits, seed 0); per horizon
rule one policy head (labels at that horizon). Each model then trades days 3 and 4 (neither is
fitted on), each day's features from a fresh engine over that day alone, exactly as ``nhmm
backtest`` of the day sees them, with the strategy config's rules (``node.config.rule_config``)
for every grid point:

- ``horizon_multiple``: the label horizon (= holding time) is the shortest one whose median
  move on the training rows is worth that many passive round trips
  (``training.pipelines.train.HORIZON_COST_MULTIPLE``);
- ``min_conf``: the regime confidence an entry needs (``GuardLimits.min_conf``);
- ``entry_ttl_s``: how long a passive entry rests before it is cancelled (``RuleConfig``).

Selection rule, fixed before any number was seen: per grid point, the simulated net PnL of each
of the 10 seed-days (seeds 6-10 x days 3, 4); score = mean - 1 standard error; the grid point
with the highest score wins (ties: higher mean, then the current default). Everything else
keeps its default.

Writes bench/results/bench_defaults.json (every grid point's per seed-day PnL, fills, round
trips), bench/results/bench_defaults.png (score by min_conf per horizon rule and TTL), and
prints the grid table and the choice.

Usage: ``python bench/bench_defaults.py [--seeds 6 7 8 9 10] [--day-seconds 21600]``.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_edge import ACCEPTANCE_SEEDS  # nothing is ever chosen on them
from rich.console import Console
from rich.progress import track
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
START = datetime.date(2024, 1, 1)
MULTIPLES = (1.0, 2.0, 4.0)
MIN_CONFS = (0.5, 0.6, 0.7, 0.8, 0.9)
TTLS = (5.0, 30.0, 120.0)
#: What a grid point of this bench is.
KEYS = ("horizon_multiple", "min_conf", "entry_ttl_s")


def day_answers(catalog: Any, symbol: str, day: datetime.date, schema: Any) -> tuple:
    """``(market, X, sessions)`` of one day from a fresh feature engine (as its backtest)."""
    import numpy as np
    import pyarrow as pa

    from training.features.offline import extract_many
    from training.features.offline import z_columns
    from training.simulation.simulator import SimMarket

    table = pa.concat_tables(list(extract_many(catalog, symbol, [day], schema).values()))
    market = SimMarket.from_table(table)
    rows = market.tradable
    X = np.column_stack([table.column(c).to_numpy() for c in z_columns(schema)])[rows]
    return market, X, market.cols["session"][rows]


@dataclass(frozen=True, eq=False)
class SeedSetup:
    """What every grid point of one seed shares: the market, its training rows, the HMM fit on
    days 1-2, and days 3 and 4 as their backtests see them (``held``: day -> ``day_answers``)."""

    seed: int
    symbol: str
    instrument: Any
    costs: Any
    schema: Any
    train_set: Any
    base: Any  # TrainConfig: nhmm train's settings, seed 0
    fit: Any  # HMMFit on days 1-2
    held: dict[datetime.date, tuple]


def setup_seed(seed: int, day_seconds: int, root: Path) -> SeedSetup:
    """``seed``'s market (``bench_edge``'s: usdm, 4 days, realistic preset) and its HMM fit."""
    from training.costs import CostModel
    from training.data.catalog import MarketCatalog
    from training.data.sources.synth import preset
    from training.data.sources.synth import synth
    from training.models.hmm import HMMConfig
    from training.models.hmm import fit_hmm
    from training.models.labels import LabelConfig
    from training.models.policy import PolicyConfig
    from training.pipelines import train as pipeline
    from training.pipelines.feature_set import load_feature_sets

    synth(preset("realistic", market="usdm", days=4, seed=seed, day_seconds=day_seconds),
          root / "cat")  # fmt: skip
    catalog = MarketCatalog(root / "cat")
    days = [START + datetime.timedelta(days=i) for i in range(4)]
    symbol = catalog.select("BTCUSDT-PERP", days)[0].instrument_id
    instrument = catalog.instrument(symbol)
    costs = CostModel.for_instrument(instrument)
    schema, train_set, _ = load_feature_sets(catalog, symbol, days[:3], test_days=1)
    base = pipeline.TrainConfig(
        hmm=HMMConfig(k_range=(3, 5), covariance_type="full", n_init=5, seed=0),
        policy=PolicyConfig(seed=0),
        labels=LabelConfig(costs=costs),
    )
    fit = fit_hmm(train_set.X, train_set.lengths, pipeline._hmm_config(base, schema))
    held = {d: day_answers(catalog, symbol, d, schema) for d in days[2:]}
    return SeedSetup(seed, symbol, instrument, costs, schema, train_set, base, fit, held)


def sim_day(
    s: SeedSetup, market: Any, actions: Any, confidence: Any, hold_s: float, **strategy: Any
) -> dict[str, float]:
    """The simulator's metrics of one held-out day, traded with the strategy config's rules
    (its defaults, overridden by ``strategy``, e.g. ``min_conf``)."""
    from node.config import PolicyHMMStrategyConfig
    from node.config import rule_config
    from training.simulation.simulator import simulate

    strat = PolicyHMMStrategyConfig(instrument_id=s.symbol, trading_enabled=True, **strategy)
    sim = simulate(market, actions, confidence, rule_config(strat, s.instrument, hold_s),
                   s.costs, exit_requote_s=strat.exit_requote_s)  # fmt: skip
    return sim.metrics()


def one_seed(seed: int, day_seconds: int, root: Path) -> list[dict[str, Any]]:
    """Every grid point's simulated net PnL on days 3 and 4 of ``seed``'s market."""
    import dataclasses

    from training.pipelines import train as pipeline
    from training.simulation.simulator import model_answers

    s = setup_seed(seed, day_seconds, root)
    horizons = {m: pipeline.choose_horizon_s(s.train_set, s.costs, multiple=m) for m in MULTIPLES}
    rows = []
    for h in sorted(set(horizons.values())):
        labels = dataclasses.replace(s.base.labels, horizon_s=h)
        cfg = dataclasses.replace(s.base, labels=labels)
        model = pipeline.fit_model(s.train_set, s.schema, cfg, hmm_fit=s.fit)
        for day, (market, X, sessions) in s.held.items():
            actions, confidence = model_answers(model.params, model.policy, X, sessions)
            for min_conf, ttl in itertools.product(MIN_CONFS, TTLS):
                m = sim_day(s, market, actions, confidence, h, min_conf=min_conf, entry_ttl_s=ttl)
                for mult in (k for k, v in horizons.items() if v == h):
                    rows.append({"seed": seed, "day": day.isoformat(), "horizon_multiple": mult,
                                 "horizon_s": h, "min_conf": min_conf, "entry_ttl_s": ttl,
                                 "net_pnl": m["net_pnl"], "fills": m["fills"],
                                 "round_trips": m["round_trips"]})  # fmt: skip
    return rows


def grid(rows: list[dict[str, Any]], keys: tuple[str, ...] = KEYS) -> list[dict[str, Any]]:
    """Per grid point (the rows' ``keys`` values): mean, standard error and score (mean - 1 SE)
    of the net PnL over the seed-days, how many were positive, round trips per day."""
    points: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        points.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for point, rs in sorted(points.items()):
        pnl = [r["net_pnl"] for r in rs]
        n = len(pnl)
        mean = sum(pnl) / n
        se = (sum((p - mean) ** 2 for p in pnl) / (n - 1) / n) ** 0.5 if n > 1 else math.inf
        out.append({**dict(zip(keys, point, strict=True)), "n": n,
                    "mean_net_pnl": mean, "se": se, "score": mean - se,
                    "positive": sum(p > 0 for p in pnl),
                    "round_trips_per_day": sum(r["round_trips"] for r in rs) / n,
                    "horizons_s": sorted({r["horizon_s"] for r in rs})})  # fmt: skip
    return out


def choose(
    points: list[dict[str, Any]], current: tuple, keys: tuple[str, ...] = KEYS
) -> dict[str, Any]:
    """The stated rule: highest score; ties: higher mean, then the current default."""
    return max(points, key=lambda p: (round(p["score"], 9), round(p["mean_net_pnl"], 9),
               tuple(p[k] for k in keys) == tuple(current)))  # fmt: skip


def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TTLS), figsize=(4 * len(TTLS), 3.5), sharey=True)
    for ax, ttl in zip(axes, TTLS, strict=True):
        for mult in MULTIPLES:
            ps = [p for p in points if p["entry_ttl_s"] == ttl and p["horizon_multiple"] == mult]
            ax.errorbar([p["min_conf"] for p in ps], [p["mean_net_pnl"] for p in ps],
                        yerr=[p["se"] for p in ps], marker="o", capsize=3,
                        label=f"horizon x{mult:g} RT")  # fmt: skip
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set(title=f"entry TTL {ttl:g} s", xlabel="min_conf")
    axes[0].set_ylabel("sim net PnL per seed-day (USDT), mean ± 1 SE")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    from training.pipelines.train import HORIZON_COST_MULTIPLE
    from training.simulation.rules import GuardLimits
    from training.simulation.rules import RuleConfig

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[6, 7, 8, 9, 10])
    ap.add_argument("--day-seconds", type=int, default=21_600)
    args = ap.parse_args(argv)
    if set(args.seeds) & ACCEPTANCE_SEEDS:
        ap.error("seeds 1-5 are bench_edge's acceptance seeds: never choose defaults on them")
    current = (HORIZON_COST_MULTIPLE, GuardLimits().min_conf, RuleConfig(GuardLimits()).entry_ttl_s)
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in track(args.seeds, description="seeds"):
        with tempfile.TemporaryDirectory(prefix="nhmm-defaults-") as tmp:
            rows.extend(one_seed(seed, args.day_seconds, Path(tmp)))
    points = grid(rows)
    best = choose(points, current)
    result = {"bench": "bench_defaults", "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "day_seconds": args.day_seconds, "seeds": args.seeds,
              "rule": "max(mean - 1 SE) of simulated net PnL over seed-days; ties: mean, current",
              "defaults_when_run": dict(zip(("horizon_multiple", "min_conf", "entry_ttl_s"),
                                            current, strict=True)),
              "chosen": best, "grid": points, "rows": rows,
              "wall_s": time.perf_counter() - t0}  # fmt: skip
    (RESULTS / "bench_defaults.json").write_text(json.dumps(result, indent=2))
    plot(points, RESULTS / "bench_defaults.png")
    table = Table(title=f"bench_defaults: sim net PnL per seed-day, seeds {args.seeds}, days 3-4")
    for col in ("horizon xRT", "horizons s", "min_conf", "TTL s", "mean", "SE", "mean-SE",
                "positive", "RT/day"):  # fmt: skip
        table.add_column(col, justify="right")
    for p in points:
        mark = " *" if p is best else ""
        table.add_row(f"{p['horizon_multiple']:g}", ",".join(f"{h:g}" for h in p["horizons_s"]),
                      f"{p['min_conf']:g}", f"{p['entry_ttl_s']:g}", f"{p['mean_net_pnl']:.3f}",
                      f"{p['se']:.3f}", f"{p['score']:.3f}{mark}", f"{p['positive']}/{p['n']}",
                      f"{p['round_trips_per_day']:.1f}")  # fmt: skip
    Console(width=140).print(table)
    print(json.dumps({"defaults_when_run": result["defaults_when_run"], "chosen": best}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
