"""Choosing the policy head's defaults on development seeds (issue 11, "edge found").

``PolicyConfig``'s tree settings and decision thresholds and ``LabelConfig.min_edge_bps`` were
never chosen: the head is fit on ~43k 1-s rows whose 300-s labels overlap, so its effective
sample is small and ``min_child_weight`` 5 may overfit. This bench asks whether a more
regularised head, a stricter threshold or a minimum edge in the labels makes the held-out day's
net PnL more consistently positive.

Protocol: ``bench/bench_defaults.py``'s, whose helpers it reuses. Per seed: the market
``bench_edge`` uses, one HMM fit on days 1-2 (``setup_seed``), the label horizon of the current
rule (``HORIZON_COST_MULTIPLE``), and per grid point one policy head (labels at that horizon,
``fit_model(..., hmm_fit=fit)`` with the point's ``PolicyConfig``/``LabelConfig``), traded in
the trade simulator on days 3 and 4 (each from a fresh engine) with the strategy's current
defaults (``min_conf``, entry TTL, every other rule). The thresholds do not enter the fit, so
the two threshold points of one fit share its booster (same trees, other decisions).

Grid: ``max_depth`` {2, 4} x ``min_child_weight`` {5, 50, 500} x buy/sell threshold {0.45,
0.55} x ``min_edge_bps`` {0, 2} x ``subsample`` {1.0} (``--subsamples 1.0 0.5`` adds 0.5).
Every other setting is ``nhmm train``'s (``eta`` 0.1, 200 rounds with early stopping, seed 0).
The 2026-11-29 run used ``--subsamples 1.0 0.5`` (48 points), fixed after timing one run of the
24 points and before reading any of its PnL figures.

Seeds: development only, 6-10 and 16-20. Seeds 1-5 (``bench_edge``'s acceptance seeds) and
11-15 (the last validation seeds) are refused.

Selection rule, fixed before any number was seen: per grid point, the simulated net PnL of every
seed-day (10 seeds x days 3, 4 = 20); score = mean - 1 standard error; the highest score wins;
ties: the current default (``bench_defaults.choose``: an exact score tie with an equal mean goes
to the current default). Reported per point: mean, SE, count positive of 20, round trips/day.

Beside the rule (not part of it), each point's paired difference to the current default: its
PnL minus the default's on the same seed-day, mean ± SE and on how many seed-days it was higher.

Writes ``OUT/bench_head.json`` (every seed-day row, after every seed; ``complete`` says whether
all seeds ran), ``OUT/bench_head.png`` (score per point, current default marked; the paired
differences below), prints the table and the choice. Nothing here changes a default: the lead
decides and re-validates on the acceptance seeds in Nautilus.

Usage: ``python bench/bench_head.py [--seeds 6 7 8 9 10 16 17 18 19 20] [--subsamples 1.0 0.5]
[--jobs 2] [--out DIR]``; ``--replot OUT/bench_head.json`` re-summarises a stored run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_defaults import ACCEPTANCE_SEEDS
from bench_defaults import RESULTS
from bench_defaults import choose
from bench_defaults import grid
from bench_defaults import setup_seed
from bench_defaults import sim_day
from rich.console import Console
from rich.progress import track
from rich.table import Table

DEPTHS = (2, 4)
MIN_CHILD_WEIGHTS = (5.0, 50.0, 500.0)
THRESHOLDS = (0.45, 0.55)
MIN_EDGES = (0.0, 2.0)
#: What a grid point of this bench is.
KEYS = ("max_depth", "min_child_weight", "threshold", "min_edge_bps", "subsample")
#: The last validation seeds of ``bench_edge`` (fresh at stop 6): nothing is chosen on them.
VALIDATION_SEEDS = frozenset({11, 12, 13, 14, 15})
DEV_SEEDS = (6, 7, 8, 9, 10, 16, 17, 18, 19, 20)


def current_default() -> tuple:
    """The grid point ``nhmm train`` uses today (``PolicyConfig``, ``LabelConfig`` defaults)."""
    from training.models.labels import LabelConfig
    from training.models.policy import PolicyConfig

    p = PolicyConfig()
    assert p.buy_threshold == p.sell_threshold, "one threshold for both sides is assumed"
    return (p.max_depth, p.min_child_weight, p.buy_threshold, LabelConfig().min_edge_bps,
            p.subsample)  # fmt: skip


def one_seed(seed: int, day_seconds: int, subsamples: tuple[float, ...]) -> list[dict[str, Any]]:
    """Every grid point's simulated net PnL on days 3 and 4 of ``seed``'s market."""
    with tempfile.TemporaryDirectory(prefix="nhmm-head-") as tmp:
        return _grid_rows(seed, day_seconds, subsamples, Path(tmp))


def _grid_rows(
    seed: int, day_seconds: int, subsamples: tuple[float, ...], root: Path
) -> list[dict[str, Any]]:
    import dataclasses

    import numpy as np

    from training.models.policy import PolicyHead
    from training.pipelines import train as pipeline
    from training.simulation.simulator import model_answers

    t0 = time.perf_counter()
    s = setup_seed(seed, day_seconds, root)
    setup_s = time.perf_counter() - t0
    h = pipeline.choose_horizon_s(s.train_set, s.costs)
    rows = []
    for depth, mcw, edge, sub in itertools.product(
        DEPTHS, MIN_CHILD_WEIGHTS, MIN_EDGES, subsamples
    ):
        t1 = time.perf_counter()
        policy = dataclasses.replace(s.base.policy, max_depth=depth, min_child_weight=mcw,
                                     subsample=sub)  # fmt: skip
        labels = dataclasses.replace(s.base.labels, horizon_s=h, min_edge_bps=edge)
        cfg = dataclasses.replace(s.base, policy=policy, labels=labels)
        model = pipeline.fit_model(s.train_set, s.schema, cfg, hmm_fit=s.fit)
        fit_s = time.perf_counter() - t1
        for thr in THRESHOLDS:
            head_cfg = dataclasses.replace(model.policy.config, buy_threshold=thr,
                                           sell_threshold=thr)  # fmt: skip
            head = PolicyHead(model.policy.booster, head_cfg, model.policy.n_states)
            for day, (market, X, sessions) in s.held.items():
                actions, confidence = model_answers(model.params, head, X, sessions)
                m = sim_day(s, market, actions, confidence, h)
                rows.append({"seed": seed, "day": day.isoformat(), "max_depth": depth,
                             "min_child_weight": mcw, "threshold": thr, "min_edge_bps": edge,
                             "subsample": sub, "horizon_s": h, "net_pnl": m["net_pnl"],
                             "fills": m["fills"], "round_trips": m["round_trips"],
                             "signal_share": float(np.mean(actions != 1)),
                             "trees": model.policy.booster.num_boosted_rounds(),
                             "fit_s": fit_s, "setup_s": setup_s})  # fmt: skip
    return rows


def plot(points: list[dict[str, Any]], current: tuple, best: dict[str, Any], path: Path) -> None:
    """Top: score (mean - 1 SE) per grid point and the mean ± 1 SE behind it, current default
    and choice marked. Bottom: each point minus the current default on the same seed-days."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, dx) = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(points)), 7), sharex=True,
                                 height_ratios=(3, 2))  # fmt: skip
    x = list(range(len(points)))
    ax.errorbar(x, [p["mean_net_pnl"] for p in points], yerr=[p["se"] for p in points],
                fmt="o", color="lightgrey", capsize=3, label="mean ± 1 SE")  # fmt: skip
    ax.plot(x, [p["score"] for p in points], "o", color="tab:blue", label="score = mean - 1 SE")
    for p, label, colour in ((_find(points, current), "current default", "tab:red"),
                             (best, "chosen", "tab:green")):  # fmt: skip
        if p is not None:
            i = points.index(p)
            ax.plot([i], [p["score"]], "s", ms=12, mfc="none", mec=colour, mew=2, label=label)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel("sim net PnL per seed-day (USDT)")
    ax.set_title("bench_head: depth d, min_child_weight w, threshold t, min_edge e, subsample s")
    ax.legend(fontsize=8)
    vs = [p.get("vs_current") or {"mean": float("nan"), "se": 0.0} for p in points]
    dx.errorbar(x, [v["mean"] for v in vs], yerr=[v["se"] for v in vs], fmt="o",
                color="tab:purple", capsize=3)  # fmt: skip
    dx.axhline(0.0, color="grey", lw=0.8)
    dx.set_ylabel("minus current, same seed-day\n(mean ± 1 SE)")
    dx.set_xticks(x, [_label(p) for p in points], rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _find(points: list[dict[str, Any]], point: tuple) -> dict[str, Any] | None:
    return next((p for p in points if tuple(p[k] for k in KEYS) == tuple(point)), None)


def _label(p: dict[str, Any]) -> str:
    return "d{:g} w{:g} t{:g} e{:g} s{:g}".format(*(p[k] for k in KEYS))


def paired(rows: list[dict[str, Any]], current: tuple) -> dict[tuple, dict[str, Any]]:
    """Per grid point, its net PnL minus the current default's on the same seed-day: the mean
    and SE of that difference (``grid`` over the differences) and on how many it was higher.
    The points share their seed-days, so this is the sharper comparison than two means."""
    base = {(r["seed"], r["day"]): r["net_pnl"] for r in rows
            if tuple(r[k] for k in KEYS) == tuple(current)}  # fmt: skip
    diffs = [{**r, "net_pnl": r["net_pnl"] - base[(r["seed"], r["day"])]} for r in rows
             if (r["seed"], r["day"]) in base]  # fmt: skip
    return {tuple(p[k] for k in KEYS): {"mean": p["mean_net_pnl"], "se": p["se"],
                                        "better": p["positive"], "n": p["n"]}
            for p in grid(diffs, KEYS)}  # fmt: skip


def table(points: list[dict[str, Any]], current: tuple, best: dict[str, Any], title: str) -> Table:
    out = Table(title=title)
    for col in ("depth", "min_child_w", "threshold", "min_edge bp", "subsample", "mean", "SE",
                "mean-SE", "positive", "RT/day", "Δ vs current ± SE", "better"):  # fmt: skip
        out.add_column(col, justify="right")
    for p in points:
        mark = (" *" if p is best else "") + (" (current)" if p is _find(points, current) else "")
        d = p.get("vs_current")
        delta = ("", "") if d is None else (f"{d['mean']:+.2f} ± {d['se']:.2f}",
                                            f"{d['better']}/{d['n']}")  # fmt: skip
        out.add_row(*(f"{p[k]:g}" for k in KEYS), f"{p['mean_net_pnl']:.3f}", f"{p['se']:.3f}",
                    f"{p['score']:.3f}{mark}", f"{p['positive']}/{p['n']}",
                    f"{p['round_trips_per_day']:.1f}", *delta)  # fmt: skip
    return out


def summarise(rows: list[dict[str, Any]], current: tuple) -> tuple[list, dict[str, Any]]:
    """The grid (with each point's paired difference to the current default) and the choice."""
    points = grid(rows, KEYS)
    vs = paired(rows, current)
    for p in points:
        p["vs_current"] = vs.get(tuple(p[k] for k in KEYS))
    return points, choose(points, current, KEYS)


def report(result: dict[str, Any], out: Path) -> None:
    """The plot and the table of a result (a fresh run's, or a stored one with ``--replot``)."""
    current = tuple(result["defaults_when_run"][k] for k in KEYS)
    points, best = summarise(result["rows"], current)
    plot(points, current, best, out / "bench_head.png")
    title = f"bench_head: sim net PnL per seed-day, seeds {result['seeds_done']}, days 3-4"
    Console(width=160).print(table(points, current, best, title))
    print(json.dumps({"defaults_when_run": result["defaults_when_run"], "chosen": best}, indent=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEV_SEEDS))
    ap.add_argument("--day-seconds", type=int, default=21_600)
    ap.add_argument("--subsamples", type=float, nargs="+", default=[1.0])
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    ap.add_argument("--replot", type=Path, help="re-summarise this bench_head.json, run nothing")
    args = ap.parse_args(argv)
    if args.replot is not None:
        result = json.loads(args.replot.read_text())
        current = tuple(result["defaults_when_run"][k] for k in KEYS)
        result["grid"], result["chosen"] = summarise(result["rows"], current)
        (args.out / "bench_head.json").write_text(json.dumps(result, indent=2))
        report(result, args.out)
        return 0
    refused = sorted(set(args.seeds) & (ACCEPTANCE_SEEDS | VALIDATION_SEEDS))
    if refused:
        ap.error(f"seeds {refused}: 1-5 are bench_edge's acceptance seeds and 11-15 its last "
                 "validation seeds; never choose defaults on them (use 6-10, 16-20)")  # fmt: skip
    current = current_default()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    done: list[int] = []
    result: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one_seed, s, args.day_seconds, tuple(args.subsamples))
                   for s in args.seeds]  # fmt: skip
        for fut in track(as_completed(futures), total=len(futures), description="seeds"):
            rows.extend(fut.result())
            done.append(rows[-1]["seed"])
            points, best = summarise(rows, current)
            result = {"bench": "bench_head", "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      "day_seconds": args.day_seconds, "seeds": args.seeds,
                      "seeds_done": sorted(done), "complete": len(done) == len(args.seeds),
                      "rule": "max(mean - 1 SE) of simulated net PnL over seed-days; "
                              "ties: mean, then the current default",
                      "defaults_when_run": dict(zip(KEYS, current, strict=True)),
                      "chosen": best, "grid": points, "rows": rows,
                      "wall_s": time.perf_counter() - t0}  # fmt: skip
            (args.out / "bench_head.json").write_text(json.dumps(result, indent=2))
    report(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
